"""benchmarks/adapter_soup.py: two grafts of one recipe averaged into one."""

from pathlib import Path

import pytest
import torch
from conftest import load_script

from audiograft.modeling.config import GraftConfig, LoraSettings
from audiograft.modeling.model import GraftModel


def trained_graft(base_models, seed: int, path: Path, rank: int = 4) -> Path:
    torch.manual_seed(seed)
    model = GraftModel.from_config(GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"])))
    model.add_lora(LoraSettings(r=rank, alpha=2 * rank))
    with torch.no_grad():  # LoRA B starts at zero; training would move it
        for name, parameter in model.named_parameters():
            if "lora_B" in name or "projector" in name:
                parameter.normal_()
    return model.save_pretrained(path)


def q_proj(model: GraftModel):
    return next(module for name, module in model.llm.named_modules() if name.endswith("layers.0.self_attn.q_proj"))


@pytest.mark.parametrize("count", [2, 3])
def test_soup_averages_projectors_and_lora_deltas_exactly(base_models, tmp_path, count):
    paths = [trained_graft(base_models, seed, tmp_path / f"run{seed}") for seed in range(1, count + 1)]
    souped = GraftModel.from_pretrained(load_script("benchmarks/adapter_soup.py").soup(paths, tmp_path / "soup"))
    grafts = [GraftModel.from_pretrained(path) for path in paths]
    deltas = [q_proj(graft).get_delta_weight("default") for graft in grafts]
    torch.testing.assert_close(q_proj(souped).get_delta_weight("default"), sum(deltas) / count)
    for name, tensor in souped.projector.state_dict().items():
        expected = sum(graft.projector.state_dict()[name] for graft in grafts) / count
        torch.testing.assert_close(tensor, expected)


def test_soup_refuses_grafts_of_different_recipes(base_models, tmp_path):
    first = trained_graft(base_models, 1, tmp_path / "rank4")
    second = trained_graft(base_models, 2, tmp_path / "rank8", rank=8)
    with pytest.raises(ValueError, match="graft_config.json"):
        load_script("benchmarks/adapter_soup.py").soup([first, second], tmp_path / "soup")
    with pytest.raises(ValueError, match="two grafts or more"):
        load_script("benchmarks/adapter_soup.py").soup([first], tmp_path / "soup")
