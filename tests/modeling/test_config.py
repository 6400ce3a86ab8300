import pytest

from audiograft.modeling.config import CONFIG_NAME, GraftConfig, LoraSettings


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


def test_unknown_keys_and_missing_file_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown GraftConfig keys: colour"):
        GraftConfig.from_dict({"encoder": "e", "llm": "l", "colour": "red"})
    with pytest.raises(FileNotFoundError, match="not a saved audiograft model"):
        GraftConfig.load(tmp_path)
