"""The uniform soup of grafts of one recipe (runs from the same starting graft): one graft whose weights are their mean.

    python benchmarks/adapter_soup.py runs/scrambled-20k/final runs/fortunes-20k/final [more grafts ...] soup
    audiograft eval dev/dev.jsonl --model soup --json soup_en.json

The projectors are averaged weight by weight. LoRA deltas (B A) are averaged exactly by concatenating ranks, as PEFT's
add_weighted_adapter(combination_type="cat") does on a loaded PeftModel: the As stacked, each B divided by the number
of grafts n and set side by side, so the soup has n times the rank and n times the alpha (the same alpha / r
scaling). Written with safetensors directly because a graft directory is a projector, a LoRA adapter and two configs,
not one PeftModel checkpoint.
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


def soup(grafts: list[Path], out: Path) -> Path:
    if len(grafts) < 2:
        raise ValueError(f"a soup needs two grafts or more, got {len(grafts)}")
    first, count = grafts[0], len(grafts)
    # graft_config.json holds the LoRA settings too (adapter_config.json lists its targets in set order).
    graft_config, *other_configs = (json.loads((graft / "graft_config.json").read_text()) for graft in grafts)
    for graft, other_config in zip(grafts[1:], other_configs, strict=True):
        if other_config != graft_config:
            raise ValueError(f"{first} and {graft} differ in graft_config.json: not runs of one recipe")
    (out / "lora").mkdir(parents=True, exist_ok=True)
    projectors = [load_file(graft / "projector.safetensors") for graft in grafts]
    save_file({name: (sum(projector[name].float() for projector in projectors) / count).to(tensor.dtype).contiguous()
               for name, tensor in projectors[0].items()}, out / "projector.safetensors")
    adapters = [load_file(graft / "lora/adapter_model.safetensors") for graft in grafts]
    souped = {}
    for name in adapters[0]:
        if "lora_A" in name:
            souped[name] = torch.cat([adapter[name] for adapter in adapters], dim=0).contiguous()
        elif "lora_B" in name:
            souped[name] = torch.cat([adapter[name] / count for adapter in adapters], dim=1).contiguous()
        else:
            raise ValueError(f"{name}: not a LoRA A or B weight")
    save_file(souped, out / "lora/adapter_model.safetensors")
    adapter_config = json.loads((first / "lora/adapter_config.json").read_text())
    adapter_config["r"] *= count
    adapter_config["lora_alpha"] *= count
    (out / "lora/adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    lora = graft_config["lora"]
    lora["r"] *= count
    lora["alpha"] *= count
    (out / "graft_config.json").write_text(json.dumps(graft_config, indent=2))
    shutil.copy(first / "processor_config.json", out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grafts", type=Path, nargs="+", help="two grafts or more, then the soup's directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger.info("wrote %s", soup(args.grafts[:-1], args.grafts[-1]))


if __name__ == "__main__":
    main()
