#!/usr/bin/env bash
# 1 GPU vs 2 GPUs at the same global batch (32): stage 1 of the default recipe for 400 steps each.
# Run from the repository root on a machine with 2 GPUs, data/synth the corpus, AUDIOGRAFT_CACHE the small preset.
set -euo pipefail
python3 - <<'PY'
import dataclasses, json
import yaml
from audiograft.training.loop import TrainConfig
base = TrainConfig.from_yaml("configs/default-stage1.yaml")
for name, batch in (("gpu1", 32), ("gpu2", 16)):
    config = dataclasses.replace(base, output_dir=f"runs/compare-{name}", batch_size=batch, max_steps=400,
                                 warmup_steps=50, log_every=10, eval_every=0, save_every=1000, num_workers=7)
    values = json.loads(json.dumps(dataclasses.asdict(config)))
    open(f"runs/compare-{name}.yaml", "w").write(yaml.safe_dump(values))
PY
CUDA_VISIBLE_DEVICES=0 python3 -m audiograft train runs/compare-gpu1.yaml
accelerate launch --num_processes 2 --mixed_precision bf16 -m audiograft train runs/compare-gpu2.yaml
