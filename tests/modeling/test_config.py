from typing import get_args

import pytest

from audiograft.modeling.config import (
    CONFIG_NAME,
    EncoderLoraSettings,
    GraftConfig,
    LoraSettings,
    ProjectorType,
)


def test_round_trip_through_json(tmp_path):
    config = GraftConfig(encoder="openai/whisper-base", llm="Qwen/Qwen2-VL-7B-Instruct", projector="stack",
                         downsample=5, lora=LoraSettings(r=64, alpha=16))
    assert config.save(tmp_path).name == CONFIG_NAME
    assert GraftConfig.load(tmp_path) == config


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"projector": "conv"}, "projector must be"),
        ({"encoder_context": "half"}, "encoder_context must be"),
        ({"downsample": 0}, "downsample must be"),
        ({"projector": "linear", "downsample": 2}, "one to one"),
    ],
)
def test_invalid_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        GraftConfig(encoder="e", llm="l", **overrides)


def test_every_projector_type_is_accepted_and_an_unknown_one_names_them_all():
    for projector in get_args(ProjectorType):
        GraftConfig(encoder="e", llm="l", projector=projector, downsample=1)
    with pytest.raises(ValueError, match="projector must be") as refused:
        GraftConfig(encoder="e", llm="l", projector="conv")
    assert all(repr(projector) in str(refused.value) for projector in get_args(ProjectorType))
    assert "qformer" in get_args(ProjectorType)


def test_unknown_keys_and_missing_file_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown GraftConfig keys: colour"):
        GraftConfig.from_dict({"encoder": "e", "llm": "l", "colour": "red"})
    with pytest.raises(FileNotFoundError, match="not a saved audiograft model"):
        GraftConfig.load(tmp_path)


def test_encoder_layer_and_encoder_lora_round_trip_and_load_from_dicts(tmp_path):
    config = GraftConfig(encoder="e", llm="l", encoder_layer=-2, encoder_lora={"r": 4, "top_layers": 1})
    assert config.encoder_lora == EncoderLoraSettings(r=4, top_layers=1)
    config.save(tmp_path)
    assert GraftConfig.load(tmp_path) == config
    defaults = GraftConfig(encoder="e", llm="l")
    assert defaults.encoder_layer is None and defaults.encoder_lora is None


@pytest.mark.parametrize("encoder_layer", [0, True, 1.5, "2"])
def test_an_encoder_layer_that_is_no_layer_is_refused(encoder_layer):
    with pytest.raises(ValueError, match="encoder_layer must be"):
        GraftConfig(encoder="e", llm="l", encoder_layer=encoder_layer)


@pytest.mark.parametrize(
    "settings, message",
    [({"r": 0}, "encoder_lora.r must be"), ({"top_layers": 0}, "top_layers must be"),
     ({"target_modules": []}, "at least one linear layer")],
)
def test_invalid_encoder_lora_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        GraftConfig(encoder="e", llm="l", encoder_lora=settings)
