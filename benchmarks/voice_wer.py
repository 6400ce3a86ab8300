"""whisper-base's WER on every voice of the synthetic corpus, per voice and per family: the table that decides which
voices the corpus leaves out (audiograft.corpora.voice_quality: over MAX_VOICE_WER, by voice or by family).

Two phases, so that one machine can synthesise (Kokoro on a GPU) and another score:

    python benchmarks/voice_wer.py synth CLIPS [--engines espeak,flite] [--per-voice 6] [--seed 0] [--texts T.json.gz]
    python benchmarks/voice_wer.py score CLIPS [CLIPS...] [--output benchmarks/tts/voice_wer.json]
        [--markdown benchmarks/tts/voice_wer.md] [--table src/audiograft/corpora/voice_wer.json] [--keep TABLE]

synth writes CLIPS/audio/*.flac (--opus: *.ogg, Ogg/Opus) and CLIPS/manifest.jsonl (speaker = voice id, with its engine, rate and pitch):
--per-voice utterances for every voice of the chosen engines (all installed ones by default; --per-voice-for
ENGINE=N overrides the count for an engine), each with a different text drawn from the corpus's text mix
(texts.load_texts, or the pools `audiograft data texts` wrote, weighted by texts.source_weights), rate and pitch drawn
from synthesis.RATE_RANGE and PITCH_RANGE as the corpus does. Reruns skip clips already made.

score transcribes each directory's clips with whisper-base (faster-whisper on the packaged CTranslate2 conversion,
int8, 2 threads, beam 5, English, as benchmarks/tts_engines.py), keeping the transcripts in CLIPS/hypotheses.jsonl
(reruns transcribe only new clips), then writes the per-voice table (voice, engine, families, utterances, words, WER;
corpus-level WER on Whisper-normalised text, audiograft.evaluation.metrics.score), the per-engine and per-family
summary as markdown, and the measured table the corpus reads. --keep adds the voices of an earlier measured table
(e.g. Kokoro's clips scored later: `score KOKORO_CLIPS --keep src/audiograft/corpora/voice_wer.json`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from audiograft.audio.io import SAMPLE_RATE, load_audio, write_audio, write_opus
from audiograft.corpora.engines import Voice, available_voices, engine_named
from audiograft.corpora.synthesis import PITCH_RANGE, RATE_RANGE
from audiograft.corpora.texts import load_texts, read_text_pools, source_weights
from audiograft.corpora.voice_quality import (
    MAX_VOICE_WER,
    MEASURED_TABLE,
    MIN_VOICE_UTTERANCES,
    MIN_VOICE_WORDS,
    Measurement,
    drop_reason,
    family_measurements,
    read_measurements,
    voice_families,
    write_measurements,
)
from audiograft.evaluation.metrics import Hypothesis, score
from audiograft.files import write_text_atomically
from audiograft.manifest import Utterance, read_manifest, write_manifest

sys.path.insert(0, str(Path(__file__).parent))
from cpu_vs_faster_whisper import faster_whisper_dir, provenance  # noqa: E402

WHISPER_THREADS = 2
logger = logging.getLogger("voice_wer")


def draw_texts(pools: dict[str, list[str]], count: int, seed: int) -> list[str]:
    """count different texts, each from a pool drawn with the corpus's source weights."""
    weights = source_weights(pools)
    names = sorted(name for name in pools if weights[name] > 0)
    probabilities = np.array([weights[name] for name in names]) / sum(weights[name] for name in names)
    orders = {name: iter(np.random.default_rng([seed, zlib.crc32(name.encode())]).permutation(len(pools[name])))
              for name in names}
    rng = np.random.default_rng([seed, 1])
    texts: list[str] = []
    while len(texts) < count:
        name = names[rng.choice(len(names), p=probabilities)]
        index = next(orders[name], None)
        if index is None:
            raise ValueError(f"text pool {name} has only {len(pools[name])} texts")
        texts.append(pools[name][index])
    return texts


def synth(clips: Path, engines: list[str] | None, per_voice: int, per_engine: dict[str, int], seed: int,
          texts_file: Path | None, opus: bool = False) -> None:
    voices = [v for v in available_voices() if engines is None or v.engine in engines]
    if engines and (missing := set(engines) - {v.engine for v in voices}):
        raise SystemExit(f"no voice of {sorted(missing)} is installed")
    pools = read_text_pools(texts_file) if texts_file else load_texts()
    counts = [per_engine.get(v.engine, per_voice) for v in voices]
    texts = iter(draw_texts(pools, sum(counts), seed))
    rng = np.random.default_rng([seed, 2])
    manifest = clips / "manifest.jsonl"
    done = {u.audio.name: u for u in read_manifest(manifest)} if manifest.is_file() else {}
    utterances, made = [], set()
    for voice, count in zip(voices, counts, strict=True):
        for index in range(count):
            text = next(texts)
            rate, pitch = (round(float(rng.uniform(*bounds)), 3) for bounds in (RATE_RANGE, PITCH_RANGE))
            path = clips / "audio" / f"{voice.id}-{index:02d}.{'ogg' if opus else 'flac'}"
            if path.name in done and done[path.name].text == text:
                utterances.append(done[path.name])
                continue
            audio, _ = engine_named(voice.engine).synthesize(text, voice, rate, pitch)
            (write_opus if opus else write_audio)(path, audio)
            made.add(path.name)
            utterances.append(Utterance(path, text, round(audio.size / SAMPLE_RATE, 3), speaker=voice.id,
                                        metadata={"engine": voice.engine, "voice": voice.name, "rate": rate,
                                                  "pitch": pitch}))
        logger.info("%s: %d clips", voice.id, count)
        write_manifest(manifest, utterances)
    write_manifest(manifest, utterances)
    transcripts = clips / "hypotheses.jsonl"
    if made and transcripts.is_file():
        # A clip made again (other texts) needs a new transcript.
        lines = [line for line in transcripts.read_text().splitlines() if next(iter(json.loads(line))) not in made]
        write_text_atomically(transcripts, "".join(f"{line}\n" for line in lines))


def transcribe_all(clips: Path, model) -> dict[str, str]:
    """Whisper-base's transcript of every clip of the directory, by audio file name, kept in hypotheses.jsonl."""
    path = clips / "hypotheses.jsonl"
    known = dict(json.loads(line).popitem() for line in path.read_text().splitlines()) if path.is_file() else {}
    with path.open("a") as kept:
        for utterance in read_manifest(clips / "manifest.jsonl"):
            name = utterance.audio.name
            if name not in known:
                segments, _ = model.transcribe(load_audio(utterance.audio), language="en", beam_size=5,
                                               condition_on_previous_text=False)
                known[name] = "".join(s.text for s in segments).strip()
                kept.write(json.dumps({name: known[name]}) + "\n")
                kept.flush()
    return known


def measured_voices(directories: list[Path], model) -> tuple[dict[Voice, Measurement], list[dict]]:
    utterances_by_voice: dict[Voice, list[Hypothesis]] = defaultdict(list)
    for clips in directories:
        hypotheses = transcribe_all(clips, model)
        for u in read_manifest(clips / "manifest.jsonl"):
            voice = Voice(u.metadata["engine"], u.metadata["voice"])
            utterances_by_voice[voice].append(Hypothesis(u.audio.name, u.text, hypotheses[u.audio.name], u.duration))
    measured, worst = {}, []
    for voice, hypotheses in sorted(utterances_by_voice.items(), key=lambda item: item[0].id):
        result = score(hypotheses, wall_seconds=1.0)
        words = result.accuracy.hits + result.accuracy.substitutions + result.accuracy.deletions
        errors = result.accuracy.substitutions + result.accuracy.deletions + result.accuracy.insertions
        measured[voice] = Measurement(len(hypotheses), words, errors)
        worst.extend({"voice": voice.id, "wer": round(u.wer, 3), "reference": u.reference,
                      "hypothesis": u.hypothesis} for u in result.utterances if u.wer > MAX_VOICE_WER)
    return measured, sorted(worst, key=lambda row: -row["wer"])


def summary_rows(measured: dict[Voice, Measurement]) -> list[dict]:
    """One row per engine, then one per family: voices, voices kept, utterances, words, WER."""
    families = family_measurements(measured)
    kept = {voice: drop_reason(voice, measured, families) is None for voice in measured}
    groups: dict[tuple[str, str], list[Voice]] = defaultdict(list)
    for voice in measured:
        groups["engine", voice.engine].append(voice)
        for family in voice_families(voice):
            if family != voice.engine:
                groups["family", family].append(voice)
    rows = []
    for (level, name), voices in sorted(groups.items()):
        pooled = sum((measured[v] for v in voices), Measurement(0, 0, 0))
        rows.append({"level": level, "name": name, "voices": len(voices), "kept": sum(kept[v] for v in voices),
                     "utterances": pooled.utterances, "words": pooled.words, "wer": round(pooled.wer, 4)})
    return rows


def markdown(rows: list[dict], measured: dict[Voice, Measurement], command: str) -> str:
    families = family_measurements(measured)
    lines = [
        "# whisper-base WER per TTS engine and voice family",
        "",
        f"Written by `{command}` (benchmarks/voice_wer.py). whisper-base: faster-whisper int8, beam 5, English; WER on",
        "Whisper-normalised text, pooled over the utterances (errors / reference words). Texts from the corpus's text",
        "mix, rates and pitches from the corpus's ranges. A voice is left out of the corpus when its WER is over",
        f"{MAX_VOICE_WER:.0%}: its own WER when it has at least {MIN_VOICE_WORDS} measured words in {MIN_VOICE_UTTERANCES}",
        "utterances, else the pooled WER",
        "of each of its families (src/audiograft/corpora/voice_quality.py: espeak-ng's accent and its variant, Kokoro's",
        "accent with table or mix, else the engine; engine rows of espeak and Kokoro are reported, not judged).",
        "Voices never measured are kept.",
        "",
        "| level | engine / family | voices | kept | utterances | words | WER |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['level']} | {r['name']} | {r['voices']} | {r['kept']} | {r['utterances']} | {r['words']} | "
              f"{100 * r['wer']:.1f}% |" for r in rows]
    dropped = {v.id: reason for v in measured if (reason := drop_reason(v, measured, families))}
    lines += ["", f"## Left out ({len(dropped)} of {len(measured)} voices)", ""]
    lines += [f"- {voice_id}: {reason}" for voice_id, reason in sorted(dropped.items())] or ["- none"]
    return "\n".join(lines) + "\n"


def score_command(directories: list[Path], output: Path, markdown_path: Path, table: Path, command: str,
                  keep: Path | None) -> None:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(faster_whisper_dir()), device="cpu", compute_type="int8", cpu_threads=WHISPER_THREADS)
    measured, worst = measured_voices(directories, model)
    if keep is not None:
        measured = read_measurements(keep) | measured
    families = family_measurements(measured)
    rows = summary_rows(measured)
    report = {
        "command": command,
        "max_wer": MAX_VOICE_WER,
        "min_voice_words": MIN_VOICE_WORDS,
        "min_voice_utterances": MIN_VOICE_UTTERANCES,
        "summary": rows,
        "voices": [{"voice": v.id, "engine": v.engine, "families": list(voice_families(v)),
                    "utterances": m.utterances, "words": m.words, "wer": round(m.wer, 4),
                    "dropped": drop_reason(v, measured, families)} for v, m in measured.items()],
        "worst_utterances": worst[:40],
        "provenance": provenance(),
    }
    write_text_atomically(output, json.dumps(report, indent=1) + "\n")
    write_text_atomically(markdown_path, markdown(rows, measured, command))
    write_measurements(table, measured, command)
    print(markdown(rows, measured, command))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("synth", help="synthesise clips for every voice of the chosen engines")
    make.add_argument("clips", type=Path)
    make.add_argument("--engines", help="comma-separated engine names (default: every installed engine)")
    make.add_argument("--per-voice", type=int, default=6)
    make.add_argument("--per-voice-for", action="append", default=[], metavar="ENGINE=N")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--texts", type=Path, help="text pools written by `audiograft data texts`")
    make.add_argument("--opus", action="store_true", help="write Ogg/Opus clips instead of FLAC (a fifth the size)")
    rate = commands.add_parser("score", help="transcribe clips with whisper-base and write the tables")
    rate.add_argument("clips", type=Path, nargs="+")
    rate.add_argument("--output", type=Path, default=Path("benchmarks/tts/voice_wer.json"))
    rate.add_argument("--markdown", type=Path, default=Path("benchmarks/tts/voice_wer.md"))
    rate.add_argument("--table", type=Path, default=MEASURED_TABLE)
    rate.add_argument("--keep", type=Path, metavar="TABLE",
                      help="an earlier measured table (--table): its voices stay in, unless measured again here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    command = " ".join(["python", *sys.argv])
    if args.command == "synth":
        per_engine = {engine: int(n) for engine, _, n in (item.partition("=") for item in args.per_voice_for)}
        engines = args.engines.split(",") if args.engines else None
        synth(args.clips, engines, args.per_voice, per_engine, args.seed, args.texts, args.opus)
    else:
        score_command(args.clips, args.output, args.markdown, args.table, command, args.keep)


if __name__ == "__main__":
    main()
