"""The synthetic corpus's voices: how many each engine offers, how fast each engine speaks on one core, and how well
whisper-base understands each voice family (the issue-13 yardstick for "sounds like a person": drop a family whose
WER is over 30%).

    python benchmarks/tts_engines.py [--kokoro-per-family 20] [--per-family 10] \
        [--output benchmarks/tts/tts_engines.json]

Families: each engine, with Kokoro split by accent (us, gb) and reported by style tables and mixes too. Every
utterance takes a different text of the corpus (audiograft.corpora.texts.load_texts), voices cycle
through the family in a seeded order, rate and pitch are drawn from the corpus ranges (synthesis.RATE_RANGE,
PITCH_RANGE). Synthesis runs in this process, Kokoro in PyTorch on one thread (KokoroEngine.THREADS), on CUDA when
there is a GPU (the JSON's kokoro_device says which; benchmarks/kokoro_gpu.py measures GPU throughput). RTF =
synthesis s / audio s, by the wall clock and by this process's CPU time (the fair figure on a busy machine);
utterances/s per core = utterances / CPU s. whisper-base is faster-whisper on the packaged CTranslate2 conversion
(int8, 2 threads, beam 5, English); WER is the corpus figure on Whisper-normalised text
(audiograft.evaluation.metrics.score). Where an engine times words, their distance to whisper's word timestamps is
reported too (a sanity check: whisper's own timestamps are off by some 100 ms).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from audiograft.audio.io import SAMPLE_RATE
from audiograft.corpora.engines import Voice, available_voices, engine_named
from audiograft.corpora.synthesis import PITCH_RANGE, RATE_RANGE
from audiograft.corpora.texts import load_texts, read_text_pools
from audiograft.evaluation.metrics import Hypothesis, score
from audiograft.files import write_text_atomically
from audiograft.manifest import Word

sys.path.insert(0, str(Path(__file__).parent))
from cpu_vs_faster_whisper import faster_whisper_dir, installed_version, provenance  # noqa: E402

WHISPER_THREADS = 2


def family(voice: Voice) -> str:
    if voice.engine == "kokoro":
        return f"kokoro-{voice.name.rpartition('-')[2]}"
    return voice.engine


def kind(voice: Voice) -> str:
    """Kokoro's pure style tables against its mixes; other engines have one kind."""
    if voice.engine == "kokoro":
        return "kokoro-mix" if voice.name.startswith("mix") else "kokoro-table"
    return voice.engine


def synthesize_family(voices: list[Voice], sentences: list[str], rng: np.random.Generator) -> list[dict]:
    order = [voices[i] for i in rng.permutation(len(voices))]
    clips = []
    for index, text in enumerate(sentences):
        voice = order[index % len(order)]
        rate, pitch = (round(float(rng.uniform(*bounds)), 3) for bounds in (RATE_RANGE, PITCH_RANGE))
        engine = engine_named(voice.engine)
        started, cpu_started = time.perf_counter(), time.process_time()
        audio, words = engine.synthesize(text, voice, rate, pitch)
        clips.append({"voice": voice, "text": text, "rate": rate, "pitch": pitch, "audio": audio, "words": words,
                      "synthesis_seconds": time.perf_counter() - started,
                      "synthesis_cpu_seconds": time.process_time() - cpu_started})
    return clips


def transcribe(model, audio: np.ndarray) -> tuple[str, list[Word]]:
    segments, _ = model.transcribe(audio, language="en", beam_size=5, word_timestamps=True,
                                   condition_on_previous_text=False)
    segments = list(segments)
    words = [Word(w.word.strip(), round(w.start, 3), round(w.end, 3)) for s in segments for w in s.words or []]
    return "".join(s.text for s in segments).strip(), words


def scored(clips: list[dict]) -> dict:
    if any("hypothesis" not in c for c in clips):
        return timed(clips)
    hypotheses = [
        Hypothesis(f"{i}", c["text"], c["hypothesis"], c["audio"].size / SAMPLE_RATE, words=c["whisper_words"],
                   reference_words=c["words"])
        for i, c in enumerate(clips)
    ]
    result = score(hypotheses, wall_seconds=1.0)
    return timed(clips) | {
        "wer": result.wer,
        "utterances_over_30pct_wer": sum(u.wer > 0.3 for u in result.utterances),
        "word_timing_vs_whisper_mae_ms": result.timestamps.mae_ms if result.timestamps else None,
        "worst": sorted(((round(u.wer, 3), clips[int(u.id)]["voice"].id, u.reference, u.hypothesis)
                         for u in result.utterances), reverse=True)[:3],
    }


def timed(clips: list[dict]) -> dict:
    """How fast the family spoke: wall and CPU real-time factors, utterances per CPU second (per core)."""
    audio_seconds = sum(c["audio"].size / SAMPLE_RATE for c in clips)
    synthesis_seconds = sum(c["synthesis_seconds"] for c in clips)
    cpu_seconds = sum(c["synthesis_cpu_seconds"] for c in clips)
    return {
        "utterances": len(clips),
        "voices": len({c["voice"].id for c in clips}),
        "wer": None,
        "utterances_over_30pct_wer": None,
        "audio_seconds": round(audio_seconds, 1),
        "synthesis_seconds": round(synthesis_seconds, 1),
        "rtf": round(synthesis_seconds / audio_seconds, 3),
        "cpu_rtf": round(cpu_seconds / audio_seconds, 3),
        "utterances_per_second_per_core": round(len(clips) / cpu_seconds, 2),
        "word_timed": sum(c["words"] is not None for c in clips),
        "word_timing_vs_whisper_mae_ms": None,
    }


def print_table(rows: dict[str, dict]) -> None:
    print(f"{'family':<14} {'utts':>5} {'voices':>6} {'WER':>7} {'>30%':>5} {'RTF wall':>8} {'RTF cpu':>7} "
          f"{'utt/s/core':>10} {'timed':>6} {'t-MAE ms':>8}")
    for name, row in rows.items():
        mae, wer, over = row["word_timing_vs_whisper_mae_ms"], row["wer"], row["utterances_over_30pct_wer"]
        print(f"{name:<14} {row['utterances']:5d} {row['voices']:6d} {'-' if wer is None else f'{100 * wer:.1f}%':>7} "
              f"{'-' if over is None else over:>5} {row['rtf']:8.3f} {row['cpu_rtf']:7.3f} "
              f"{row['utterances_per_second_per_core']:10.2f} "
              f"{row['word_timed']:6d} {'-' if mae is None else f'{mae:.0f}':>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kokoro-per-family", type=int, default=20)
    parser.add_argument("--per-family", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", nargs="*", help="only these families (default: all)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/tts/tts_engines.json"))
    parser.add_argument("--speed-only", action="store_true",
                        help="time the engines, transcribe nothing (a machine without faster-whisper)")
    parser.add_argument("--texts", type=Path, help="text pools written by `audiograft data texts` (default: load_texts)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    voices = available_voices()
    by_family: dict[str, list[Voice]] = defaultdict(list)
    for voice in voices:
        by_family[family(voice)].append(voice)
    rng = np.random.default_rng(args.seed)
    pools = load_texts() if args.texts is None else read_text_pools(args.texts)
    sentences = [text for source in pools.values() for text in source]
    picks = iter(rng.permutation(len(sentences)))

    model = None
    if not args.speed_only:
        from faster_whisper import WhisperModel

        model = WhisperModel(str(faster_whisper_dir()), device="cpu", compute_type="int8", cpu_threads=WHISPER_THREADS)
    clips_by_family = {}
    for name, members in sorted(by_family.items()):
        if args.families and name not in args.families:
            continue
        count = args.kokoro_per_family if name.startswith("kokoro") else args.per_family
        if members[0].engine == "kokoro":
            engine_named("kokoro").kokoro  # load the model before timing
        texts = [sentences[next(picks)] for _ in range(count)]
        clips = synthesize_family(members, texts, rng)
        for clip in clips if model is not None else ():
            clip["hypothesis"], clip["whisper_words"] = transcribe(model, clip["audio"])
        clips_by_family[name] = clips
        logging.warning("%s done", name)

    rows = {name: scored(clips) for name, clips in clips_by_family.items()}
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for clip in (c for clips in clips_by_family.values() for c in clips if c["voice"].engine == "kokoro"):
        by_kind[kind(clip["voice"])].append(clip)
    rows |= {name: scored(clips) for name, clips in sorted(by_kind.items())}
    print_table(rows)
    report = {
        "command": " ".join(["python", *sys.argv]),
        "voices": dict(Counter(v.engine for v in voices)) | {"total": len(voices)},
        "families": rows,
        "load_average": os.getloadavg(),
        "provenance": provenance() | {"kokoro-onnx": installed_version("kokoro-onnx"),
                                      "kokoro": installed_version("kokoro")},
        "kokoro_device": str(engine_named("kokoro").kokoro.model.device)
        if any(name.startswith("kokoro") for name in clips_by_family) else None,
    }
    write_text_atomically(args.output, json.dumps(report, indent=2, default=str))
    print(json.dumps(report["voices"]))


if __name__ == "__main__":
    main()
