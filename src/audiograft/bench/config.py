"""BenchConfig, apart from the harness so that reading it (the CLI's defaults) loads no model code."""

from __future__ import annotations

from dataclasses import dataclass

WORKLOADS = ("W30", "Wmix")


@dataclass
class BenchConfig:
    scale: str = "7b"
    rows: tuple[str, ...] = ("seed", "batched", "fast", "cached")
    workloads: tuple[str, ...] = WORKLOADS
    tasks: tuple[str, ...] = ("inference", "training")
    seed_clips: int = 8  # one clip per generate costs the same per clip in any order: timed on a spread subset
    train_clips: int = 64  # clips per timed training pass (every row trains on the same ones)
    repeats: int = 3
    lora_rank: int = 64
    workload_clips: int | None = None  # only the first N clips of each workload (smoke runs)
    device: str = "cuda"
    profile_dir: str | None = None
