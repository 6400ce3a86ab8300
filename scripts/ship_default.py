"""Make a trained graft the built-in default model (`--model default`): the last step of the documented recipe.

    python scripts/ship_default.py runs/v4-stage2/final

Copies the graft's config, processor settings and adapter-only weights into src/audiograft/presets/default_model
(or --target), the weights in bf16 (half the size; the loader widens them to fp32 on CPU), and the LoRA config naming
the LLM by its registry name instead of the training machine's path. The word aligner reads only the encoder's
frames, so the one already there stays while the encoder is the same; MODEL_CARD.md stays (update it by hand);
anything else is removed. The confidence calibrator belongs to the LLM's answers: fit it again afterwards with
`audiograft calibrate default MANIFEST`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from audiograft.inference.alignment import CALIBRATOR_FILE
from audiograft.modeling.config import GraftConfig
from audiograft.modeling.model import LORA_DIR, PROJECTOR_WEIGHTS
from audiograft.presets.pretrained import DEFAULT_MODEL_DIR

LORA_WEIGHTS = "adapter_model.safetensors"
LORA_CONFIG = "adapter_config.json"
TEXT_FILES = ("graft_config.json", "processor_config.json")
MODEL_CARD = "MODEL_CARD.md"


def to_bf16(source: Path, target: Path) -> None:
    tensors = {name: tensor.to(torch.bfloat16) if tensor.is_floating_point() else tensor
               for name, tensor in load_file(source).items()}
    save_file(tensors, target, metadata={"format": "pt"})
    target.chmod(0o644)  # safetensors writes owner-only files; the package's files are readable by everyone


def ship(source: Path, target: Path) -> None:
    config = GraftConfig.load(source)
    kept_encoder = (target / TEXT_FILES[0]).is_file() and GraftConfig.load(target).encoder == config.encoder
    for path in target.iterdir() if target.is_dir() else ():
        if path.name == MODEL_CARD or kept_encoder and path.name.startswith("word_aligner"):
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    (target / LORA_DIR).mkdir(parents=True, exist_ok=True)
    for name in TEXT_FILES:
        shutil.copy(source / name, target / name)
    to_bf16(source / PROJECTOR_WEIGHTS, target / PROJECTOR_WEIGHTS)
    if (source / LORA_DIR).is_dir():
        to_bf16(source / LORA_DIR / LORA_WEIGHTS, target / LORA_DIR / LORA_WEIGHTS)
        lora_config = json.loads((source / LORA_DIR / LORA_CONFIG).read_text())
        lora_config["base_model_name_or_path"] = config.llm
        if isinstance(lora_config["target_modules"], list):  # PEFT writes its set in hash order: one run, one file
            lora_config["target_modules"] = sorted(lora_config["target_modules"])
        (target / LORA_DIR / LORA_CONFIG).write_text(json.dumps(lora_config, indent=2, sort_keys=True) + "\n")
    else:
        (target / LORA_DIR).rmdir()
    print(f"shipped {source} as {target}; now fit its {CALIBRATOR_FILE} with `audiograft calibrate`")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a saved graft directory (runs/NAME/final)")
    parser.add_argument("--target", type=Path, default=DEFAULT_MODEL_DIR)
    args = parser.parse_args()
    ship(args.source, args.target)


if __name__ == "__main__":
    main()
