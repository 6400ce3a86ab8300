"""A reproducible multi-voice synthetic English speech corpus from offline TTS engines.

Each engine is one small class; engines that are not installed are skipped with a warning
(scripts/install_tts.sh installs them all on Debian). Text comes in several registers, from
public-domain text that Debian ships and from our own grammars (audiograft.corpora.texts). Utterances are held out
by voice and by sentence, so the test split measures generalisation to unseen speakers and
unseen text. No augmentation is baked in: training applies it on the fly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import multiprocessing.sharedctypes
import os
import time
import zlib
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from audiograft.audio.io import CLIP_FORMATS, SAMPLE_RATE, write_clip
from audiograft.corpora.engines import Voice, available_voices, engine_named
from audiograft.corpora.texts import load_texts, source_weights
from audiograft.corpora.voice_quality import usable_voices
from audiograft.files import atomic_path, write_text_atomically
from audiograft.manifest import parse_record, read_manifest, write_manifest

logger = logging.getLogger(__name__)

# Ranges of the per-utterance variation inside one voice; wide enough to vary prosody,
# narrow enough that every engine stays intelligible at the extremes.
RATE_RANGE = (0.85, 1.2)
PITCH_RANGE = (0.89, 1.12)
SPLITS = ("train", "test")



@dataclass(frozen=True)
class Utterance:
    id: str
    index: int
    split: str
    text: str
    voice: Voice
    rate: float
    pitch: float


@dataclass
class CorpusSummary:
    utterances: dict[str, int]
    hours: dict[str, float]
    voices: dict[str, list[str]]
    wall_seconds: float
    failed: int = 0
    word_timed_utterances: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Corpus


def split_voices(voices: list[Voice], test_fraction: float, seed: int) -> dict[str, list[Voice]]:
    """Hold voices out of training: each engine with at least 3 voices gives about test_fraction
    of them (at least one) to test, so test covers several engines and train keeps every engine.

    An engine's test voices depend only on the seed and that engine's voices, so corpus parts built on machines
    with different engines installed hold out the same voices of the engines they share."""
    rng = np.random.default_rng([seed, 1])
    by_engine: dict[str, list[Voice]] = defaultdict(list)
    for voice in voices:
        by_engine[voice.engine].append(voice)
    test: list[Voice] = []
    if test_fraction > 0:
        for engine in sorted(by_engine):
            group = by_engine[engine]
            if len(group) >= 3:
                count = max(1, round(test_fraction * len(group)))
                engine_rng = np.random.default_rng([seed, 1, zlib.crc32(engine.encode())])
                test.extend(group[i] for i in engine_rng.choice(len(group), count, replace=False))
        if not test and len(voices) >= 2:
            test.append(voices[rng.integers(len(voices))])
        if not test:
            raise ValueError("holding voices out of training needs at least two voices")
    held_out = set(test)
    return {"train": [v for v in voices if v not in held_out], "test": sorted(test, key=lambda v: v.id)}


def _hold_out_texts(
    texts: Mapping[str, Sequence[str]], seed: int, test_fraction: float
) -> dict[str, dict[str, list[str]]]:
    """Each pool's texts, shuffled and cut in two: about test_fraction of them (at least one) for test only."""
    split_pools: dict[str, dict[str, list[str]]] = {split: {} for split in SPLITS}
    for name, pool in texts.items():
        order = np.random.default_rng([seed, 0, zlib.crc32(name.encode())]).permutation(len(pool))
        held_out = max(1, round(test_fraction * len(pool))) if test_fraction > 0 else 0
        split_pools["test"][name] = [pool[i] for i in order[:held_out]]
        split_pools["train"][name] = [pool[i] for i in order[held_out:]]
    return split_pools


def plan_corpus(
    utterances: int,
    voices: list[Voice],
    texts: Mapping[str, Sequence[str]],
    seed: int,
    test_fraction: float,
    weights: Mapping[str, float] | None = None,
) -> list[Utterance]:
    """The full, deterministic assignment of text, voice, rate and pitch to each utterance.

    texts are named pools (texts.load_texts: one per source); each utterance draws a pool with the given
    weights (equal when None; a pool the weights leave out is not drawn), then the pool's next text.
    Utterance i depends only on the seed, i and the installed voices and text, never on the requested
    count, so growing a corpus keeps every utterance already made.
    """
    pools = _hold_out_texts(texts, seed, test_fraction)
    drawn_splits = SPLITS if test_fraction > 0 else ("train",)
    pool_choices = {split: _pool_choice(split, pools[split], weights) for split in drawn_splits}
    split_voice_lists = split_voices(voices, test_fraction, seed)
    voice_weights = {
        split: np.array([v.weight for v in vs]) / sum(v.weight for v in vs) if vs else None
        for split, vs in split_voice_lists.items()
    }
    used: dict[tuple[str, str], int] = defaultdict(int)
    plan = []
    for index in range(utterances):
        # Every 1/test_fraction-th utterance is a test one: exact proportions at any prefix.
        is_test = math.floor((index + 1) * test_fraction) > math.floor(index * test_fraction)
        split = "test" if is_test else "train"
        names, probabilities = pool_choices[split]
        name = names[np.random.default_rng([seed, 3, index]).choice(len(names), p=probabilities)]
        pool = pools[split][name]
        text = pool[used[split, name] % len(pool)]
        used[split, name] += 1
        rng = np.random.default_rng([seed, 2, index])
        candidates = split_voice_lists[split]
        voice = candidates[rng.choice(len(candidates), p=voice_weights[split])]
        rate = round(float(rng.uniform(*RATE_RANGE)), 3)
        pitch = round(float(rng.uniform(*PITCH_RANGE)), 3)
        digest = hashlib.sha1(f"{voice.id}|{rate}|{pitch}|{text}".encode()).hexdigest()[:10]
        plan.append(Utterance(f"{index:06d}-{digest}", index, split, text, voice, rate, pitch))
    return plan


def _pool_choice(
    split: str, pools: Mapping[str, list[str]], weights: Mapping[str, float] | None
) -> tuple[list[str], np.ndarray]:
    """The pools a split can draw from (non-empty, weighted above zero) and their normalised probabilities."""
    names = sorted(name for name, pool in pools.items() if pool and (weights is None or weights.get(name, 0) > 0))
    if not names:
        raise ValueError(f"no {split} text to draw from: every text pool is empty there or weighted zero")
    raw = np.array([1.0 if weights is None else weights[name] for name in names])
    return names, raw / raw.sum()


def _audio_path(out_dir: Path, utterance: Utterance, audio_format: str) -> Path:
    return out_dir / "audio" / f"{utterance.id}{CLIP_FORMATS[audio_format]}"


def _record_path(out_dir: Path, utterance: Utterance) -> Path:
    return out_dir / "audio" / f"{utterance.id}.json"


def _is_done(out_dir: Path, utterance: Utterance, audio_format: str) -> bool:
    return _audio_path(out_dir, utterance, audio_format).exists() and _record_path(out_dir, utterance).exists()


def synthesize_utterance(out_dir: Path, utterance: Utterance, audio_format: str = "flac") -> dict:
    """Synthesise one utterance and write its audio (in one of audio.io.CLIP_FORMATS) and manifest record, each
    atomically.

    The record is written before the audio, so an audio file on disk always has its record."""
    voice = utterance.voice
    audio, words = engine_named(voice.engine).synthesize(utterance.text, voice, utterance.rate, utterance.pitch)
    if audio.size == 0:
        raise RuntimeError(f"{voice.id} produced no audio")
    audio_path = _audio_path(out_dir, utterance, audio_format)
    record = {
        "audio": f"audio/{audio_path.name}",
        "text": utterance.text,
        "duration": round(audio.size / SAMPLE_RATE, 3),
        "speaker": voice.id,
        "split": utterance.split,
        "rate": utterance.rate,
        "pitch": utterance.pitch,
    }
    if words is not None:
        record["words"] = [word.to_dict() for word in words]
    with atomic_path(_record_path(out_dir, utterance)) as temporary:
        temporary.write_text(json.dumps(record))
    write_clip(audio_path, audio, audio_format)
    return record


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("synthesising"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not enabled
    )


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (none without CUDA)."""
    count = torch.cuda.device_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    return [name.strip() for name in listed.split(",")][:count] if listed else [str(i) for i in range(count)]


def pin_worker_to_gpu(started: multiprocessing.sharedctypes.Synchronized, gpus: Sequence[str]) -> None:
    """A worker process's initializer: the n-th worker to start sees only GPU n mod len(gpus), so the neural
    engines' models spread over every GPU of the machine. Runs before the worker touches CUDA."""
    with started.get_lock():
        index = started.value
        started.value += 1
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]


def _synthesize_all(
    out_dir: Path, pending: list[Utterance], workers: int, progress: bool, audio_format: str
) -> int:
    """Synthesise pending utterances in worker processes, spread over the GPUs if any; returns how many failed."""
    failed = 0
    # spawn: engines hold C libraries and subprocesses that must not be shared through fork.
    context = multiprocessing.get_context("spawn")
    with (
        _progress_bar(progress) as bar,
        ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=pin_worker_to_gpu,
                            initargs=(context.Value("i", 0), visible_gpus())) as pool,
    ):
        task = bar.add_task("synthesise", total=len(pending))
        futures = {
            pool.submit(synthesize_utterance, out_dir, utterance, audio_format): utterance for utterance in pending
        }
        try:
            for future in as_completed(futures):
                bar.advance(task)
                if future.exception() is not None:
                    failed += 1
                    utterance = futures[future]
                    logger.error(
                        "utterance %s (%s) failed: %s", utterance.id, utterance.voice.id, future.exception()
                    )
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return failed


def _write_manifests(out_dir: Path, records: list[dict]) -> None:
    # The records are manifest lines already; parsing them checks them and keeps their rate and pitch.
    utterances = [parse_record(record, out_dir) for record in records]
    write_manifest(out_dir / "manifest.jsonl", utterances)
    for split in SPLITS:
        write_manifest(out_dir / f"{split}.jsonl", [u for u in utterances if u.split == split])


def _write_voices(out_dir: Path, voices: list[Voice]) -> None:
    """voices.json: the engine, name, weight and settings of every voice, by the id manifests call it (speaker)."""
    described = {
        v.id: {"engine": v.engine, "name": v.name, "weight": v.weight, "settings": dict(v.settings)} for v in voices
    }
    write_text_atomically(out_dir / "voices.json", json.dumps(described, indent=1))


def corpus_voices(engines: Collection[str] | None = None) -> list[Voice]:
    """The voices a corpus uses: those of every installed engine (or of the named engines only), less those
    whisper-base cannot follow (voice_quality.usable_voices)."""
    voices = usable_voices(available_voices(engines))
    if not voices:
        raise RuntimeError("no usable TTS voice installed; run scripts/install_tts.sh")
    return voices


def build_corpus(
    out_dir: Path,
    utterances: int,
    seed: int = 0,
    workers: int = os.cpu_count() or 1,
    test_fraction: float = 0.1,
    progress: bool = True,
    engines: Collection[str] | None = None,
    texts: Mapping[str, Sequence[str]] | None = None,
    start: int = 0,
    audio_format: str = "flac",
    split: str | None = None,
) -> CorpusSummary:
    """Build (or finish building) a synthetic speech corpus under out_dir.

    Writes out_dir/audio/*.flac (16 kHz mono), the JSONL manifests train.jsonl, test.jsonl
    and manifest.jsonl (both splits), and voices.json (how each voice is made). Re-running with
    the same arguments skips utterances already on disk, so an interrupted build resumes where it
    stopped.

    engines restricts the voices to those engines' (corpus_voices); texts are the text pools to plan from
    (default: texts.load_texts(); texts.read_text_pools reads those another machine wrote). Only the plan's
    utterances from start on are made: parts of one corpus built on several machines take disjoint ranges
    of one plan (same seed and texts), so their utterances differ in text and id, and merge_corpora joins them.
    audio_format is one of audio.io.CLIP_FORMATS: "opus" stores the clips as wideband Ogg/Opus, a fifth of FLAC's size.
    split (one of SPLITS) makes only that split's utterances: the test split alone is a held-out set (voices and
    texts) without the cost of the training clips planned beside it.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    if not 0 <= start < utterances:
        raise ValueError(f"start {start} must be below the number of utterances ({utterances})")
    if audio_format not in CLIP_FORMATS:
        raise ValueError(f"audio_format must be one of {sorted(CLIP_FORMATS)}, got {audio_format!r}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    voices = corpus_voices(engines)
    _write_voices(out_dir, voices)
    texts = load_texts() if texts is None else texts
    plan = plan_corpus(utterances, voices, texts, seed, test_fraction, source_weights(texts))[start:]
    plan = [u for u in plan if split in (None, u.split)]
    pending = [u for u in plan if not _is_done(out_dir, u, audio_format)]
    logger.info("%d of %d utterances to synthesise with %d voices", len(pending), len(plan), len(voices))
    failed = _synthesize_all(out_dir, pending, workers, progress, audio_format) if pending else 0
    records = [json.loads(_record_path(out_dir, u).read_text()) for u in plan if _is_done(out_dir, u, audio_format)]
    _write_manifests(out_dir, records)
    return CorpusSummary(
        utterances={s: sum(r["split"] == s for r in records) for s in SPLITS},
        hours={s: round(sum(r["duration"] for r in records if r["split"] == s) / 3600, 3) for s in SPLITS},
        voices={s: sorted({r["speaker"] for r in records if r["split"] == s}) for s in SPLITS},
        wall_seconds=round(time.monotonic() - started, 1),
        failed=failed,
        word_timed_utterances={s: sum(r["split"] == s and "words" in r for r in records) for s in SPLITS},
    )


def merge_corpora(out_dir: Path, parts: Sequence[Path]) -> dict[str, int]:
    """One corpus out of parts built on several machines (build_corpus with disjoint start ranges of one plan):
    out_dir gets manifest.jsonl, train.jsonl, test.jsonl and voices.json that point into the parts' audio, by paths
    relative to out_dir (move the parts and out_dir together). Returns the utterances of each split.

    Two parts holding one utterance index are a ValueError naming both: they were built from the same range of the
    plan, so they repeat its texts (or, with the same voices, its very clips)."""
    out_dir = Path(out_dir).resolve()
    merged, owner = [], {}
    voices: dict[str, dict] = {}
    for part in map(Path, parts):
        for utterance in read_manifest(part / "manifest.jsonl"):
            index = utterance.audio.stem.partition("-")[0]
            if index in owner:
                raise ValueError(f"{utterance.source} and {owner[index]} are both utterance {index} of the plan: "
                                 "build each part from its own range of utterances (audiograft data synth --start)")
            owner[index] = utterance.source
            # A relative path, kept as is by write_manifest, so that the merged corpus moves with its parts.
            utterance.audio = Path(os.path.relpath(utterance.audio.resolve(), out_dir))
            merged.append(utterance)
        described = json.loads((part / "voices.json").read_text())
        for voice_id, description in described.items():
            if voices.setdefault(voice_id, description) != description:
                raise ValueError(f"{part / 'voices.json'} describes voice {voice_id} unlike an earlier part")
    merged.sort(key=lambda u: u.audio.name)
    write_manifest(out_dir / "manifest.jsonl", merged)
    for split in SPLITS:
        write_manifest(out_dir / f"{split}.jsonl", [u for u in merged if u.split == split])
    write_text_atomically(out_dir / "voices.json", json.dumps(voices, indent=1))
    return {split: sum(u.split == split for u in merged) for split in SPLITS}


def corpus_statistics(corpus: Path) -> dict[str, dict[str, dict[str, float]]]:
    """What a corpus (build_corpus's or merge_corpora's directory) holds, per engine and split and in all:
    {engine or "all": {split or "all": {"voices", "utterances", "hours"}}}, from manifest.jsonl and voices.json."""
    corpus = Path(corpus)
    engine_of = {voice: d["engine"] for voice, d in json.loads((corpus / "voices.json").read_text()).items()}
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for utterance in read_manifest(corpus / "manifest.jsonl"):
        if utterance.speaker not in engine_of:
            raise ValueError(f"{utterance.source}: speaker {utterance.speaker!r} is not in {corpus / 'voices.json'}")
        for engine in (engine_of[utterance.speaker], "all"):
            for split in (utterance.split, "all"):
                groups[engine, split].append(utterance)
    statistics: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (engine, split), utterances in sorted(groups.items()):
        statistics[engine][split] = {
            "voices": len({u.speaker for u in utterances}),
            "utterances": len(utterances),
            "hours": round(sum(u.duration for u in utterances) / 3600, 3),
        }
    return dict(statistics)
