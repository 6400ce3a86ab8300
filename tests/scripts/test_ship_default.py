"""scripts/ship_default.py: a trained graft becomes the built-in model, bf16, with the LLM named as the registry names it."""

import json

import torch
from conftest import load_script
from safetensors.torch import load_file

from audiograft.modeling.config import GraftConfig
from audiograft.modeling.model import GraftModel


def test_ship_writes_bf16_adapters_keeps_the_aligner_and_drops_the_stale_calibrator(base_models, tmp_path):
    from audiograft.modeling.config import LoraSettings

    torch.manual_seed(0)
    model = GraftModel.from_config(GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"])))
    model.add_lora(LoraSettings(r=4, alpha=8))
    source = model.save_pretrained(tmp_path / "run")
    target = tmp_path / "default"
    GraftModel.from_config(GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"]))) \
        .save_pretrained(target)
    (target / "word_aligner.json").write_text("{}")
    (target / "confidence_calibrator.json").write_text("{}")
    (target / "MODEL_CARD.md").write_text("# the card\n")

    source_config = source / "lora" / "adapter_config.json"
    source_adapter = json.loads(source_config.read_text())
    source_adapter["target_modules"] = sorted(source_adapter["target_modules"], reverse=True)  # PEFT's hash order
    source_config.write_text(json.dumps(source_adapter))

    load_script("scripts/ship_default.py").ship(source, target)

    assert (target / "word_aligner.json").is_file()  # same encoder: its frames, so its aligner, are unchanged
    assert not (target / "confidence_calibrator.json").exists()  # fitted on the old LLM's answers
    assert (target / "MODEL_CARD.md").read_text() == "# the card\n"
    projector = load_file(target / "projector.safetensors")
    assert {t.dtype for t in projector.values()} == {torch.bfloat16}
    assert {t.dtype for t in load_file(target / "lora" / "adapter_model.safetensors").values()} == {torch.bfloat16}
    adapter = json.loads((target / "lora" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(base_models["qwen2"])
    assert adapter["target_modules"] == sorted(source_adapter["target_modules"])
    shipped = GraftModel.from_pretrained(target)
    for name, tensor in load_file(source / "projector.safetensors").items():
        torch.testing.assert_close(shipped.projector.state_dict()[name].float(), tensor.bfloat16().float())
