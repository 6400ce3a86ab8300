"""How the built-in default model was trained: stage-1 variants, their comparison, stage 2 on the best.

Run from the repository root on a CUDA machine with the synthetic corpus at data/synth:
    python scripts/gpu/train_default.py stage1 pool:4 stack:4     # one stage-1 run per projector:downsample
    python scripts/gpu/train_default.py compare runs/s1-*         # test-split WER and RTFx of each
    python scripts/gpu/train_default.py stage2 runs/s1-stack4     # LoRA stage on the chosen projector
    python scripts/gpu/train_default.py stage2 runs/s1-stack8 400 qlora   # a shorter stage 2, QLoRA (4-bit LLM)
Results are written as JSON beside each run; with RESULTS set, the small artefacts are copied there too.
"""

import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from audiograft.evaluation.runner import evaluate_model
from audiograft.manifest import read_manifest
from audiograft.modeling.model import GraftModel
from audiograft.training.loop import TrainConfig, train

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
RESULTS = os.environ.get("RESULTS")


def stage1(variants: list[str]) -> None:
    base = TrainConfig.from_yaml("configs/default-stage1.yaml")
    for variant in variants:
        projector, downsample = variant.split(":")
        name = f"s1-{projector}{downsample}"
        config = dataclasses.replace(
            base, output_dir=f"runs/{name}", model={**base.model, "projector": projector, "downsample": int(downsample)}
        )
        started = time.perf_counter()
        train(config)
        (Path(config.output_dir) / "wall_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
        export(Path(config.output_dir), name)


def compare(runs: list[str], limit: int = 1000) -> None:
    utterances = read_manifest("data/synth/test.jsonl")[:limit]
    for run in runs:
        model = GraftModel.from_pretrained(Path(run) / "final", device="cuda")
        evaluate_model(model, utterances[:64], batch_size=64)  # warm-up
        torch.cuda.synchronize()
        result = evaluate_model(model, utterances, batch_size=64, name=run)
        summary = {k: v for k, v in result.to_dict().items() if k != "utterances"}
        (Path(run) / "test_eval.json").write_text(json.dumps(summary, indent=2))
        print(f"{run}: WER {100 * result.wer:.2f}%  CER {100 * result.cer:.2f}%  RTFx {result.rtfx:.0f}", flush=True)
        export(Path(run), Path(run).name)


def stage2(stage1_run: str, steps: str | None = None, variant: str = "lora") -> None:
    base = TrainConfig.from_yaml("configs/default-stage2.yaml")
    config = dataclasses.replace(
        base, init_from=f"{stage1_run}/final", output_dir=f"{stage1_run}-stage2" + ("" if steps is None else f"-{steps}-{variant}"),
        max_steps=int(steps or base.max_steps), qlora=variant == "qlora",
    )
    started = time.perf_counter()
    train(config)
    (Path(config.output_dir) / "wall_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    export(Path(config.output_dir), Path(config.output_dir).name)


def export(run: Path, name: str) -> None:
    """Copy the small artefacts (adapter, log, eval) to $RESULTS/name/."""
    if RESULTS is None:
        return
    target = Path(RESULTS) / name
    target.mkdir(parents=True, exist_ok=True)
    for path in [run / "log.jsonl", run / "wall_seconds.txt", run / "test_eval.json"]:
        if path.exists():
            shutil.copy(path, target / path.name)
    final = run / "final"
    if final.exists():
        for path in final.rglob("*"):
            if path.is_file():
                flat = "lora-" + path.name if path.parent.name == "lora" else path.name
                shutil.copy(path, target / flat)


if __name__ == "__main__":
    {"stage1": stage1, "compare": compare, "stage2": lambda args: stage2(*args)}[sys.argv[1]](sys.argv[2:])
