"""The uniform soup of two grafts trained from the same stage-1 projector: one graft whose weights are their mean.

    python benchmarks/adapter_soup.py runs/scrambled-20k/final runs/fortunes-20k/final soup
    audiograft eval dev/dev.jsonl --model soup --json soup_en.json

The projectors are averaged weight by weight. LoRA deltas (B A) are averaged exactly by concatenating ranks, as PEFT's
add_weighted_adapter(combination_type="cat") does on a loaded PeftModel: A stacked, each B halved and set side by side,
so the soup has twice the rank and twice the alpha (the same alpha / r scaling). Written with safetensors directly
because a graft directory is a projector, a LoRA adapter and two configs, not one PeftModel checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

logger = logging.getLogger("benchmarks.adapter_soup")


def soup(first: Path, second: Path, out: Path) -> Path:
    # graft_config.json holds the LoRA settings too (adapter_config.json lists its targets in set order).
    graft_config, second_config = (json.loads((graft / "graft_config.json").read_text()) for graft in (first, second))
    if graft_config != second_config:
        raise ValueError(f"{first} and {second} differ in graft_config.json: not two runs of one recipe")
    (out / "lora").mkdir(parents=True, exist_ok=True)
    projectors = [load_file(graft / "projector.safetensors") for graft in (first, second)]
    save_file({name: ((projectors[0][name].float() + tensor.float()) / 2).to(tensor.dtype).contiguous()
               for name, tensor in projectors[1].items()}, out / "projector.safetensors")
    adapters = [load_file(graft / "lora/adapter_model.safetensors") for graft in (first, second)]
    souped = {}
    for name, tensor in adapters[0].items():
        if "lora_A" in name:
            souped[name] = torch.cat([tensor, adapters[1][name]], dim=0).contiguous()
        elif "lora_B" in name:
            souped[name] = torch.cat([tensor / 2, adapters[1][name] / 2], dim=1).contiguous()
        else:
            raise ValueError(f"{name}: not a LoRA A or B weight")
    save_file(souped, out / "lora/adapter_model.safetensors")
    adapter_config = json.loads((first / "lora/adapter_config.json").read_text())
    adapter_config["r"], adapter_config["lora_alpha"] = 2 * adapter_config["r"], 2 * adapter_config["lora_alpha"]
    (out / "lora/adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    lora = graft_config["lora"]
    lora["r"], lora["alpha"] = 2 * lora["r"], 2 * lora["alpha"]
    (out / "graft_config.json").write_text(json.dumps(graft_config, indent=2))
    shutil.copy(first / "processor_config.json", out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger.info("wrote %s", soup(args.first, args.second, args.out))


if __name__ == "__main__":
    main()
