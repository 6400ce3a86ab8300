"""Read CTranslate2 model files and turn Whisper ones into transformers models.

CTranslate2 only ships a writer for its `model.bin` format
(`ctranslate2/specs/model_spec.py`, `ModelSpec._serialize`), so the reader is
written here against that layout, little-endian:

    u32 binary version, string spec name, u32 spec revision,
    u32 variable count, then per variable:
        string name, u8 rank, u32 dims[rank], u8 dtype id, u32 byte count, bytes
    u32 alias count, then per alias: string alias, string target

where a string is a u16 length (including a trailing NUL) followed by UTF-8
bytes and the NUL.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

SUPPORTED_BINARY_VERSION = 6
WHISPER_SPEC_NAME = "WhisperSpec"

# Indexed by the dtype id CTranslate2 writes; order of its DataType enum.
# bfloat16 has no numpy dtype: it is read as raw uint16 and widened below.
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


class Ct2FormatError(ValueError):
    """The bytes are not a CTranslate2 model this reader understands."""


@dataclass(frozen=True)
class Ct2Model:
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]

    def scalar(self, name: str) -> int:
        return int(self[name])


class _Cursor:
    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))
        return value

    def string(self) -> str:
        length = self.unpack("H")
        raw = self.take(length)
        return bytes(raw[:-1]).decode("utf-8")

    def take(self, n: int) -> memoryview:
        if self.offset + n > len(self.data):
            raise Ct2FormatError(f"truncated model: wanted {n} bytes at offset {self.offset}")
        chunk = self.data[self.offset : self.offset + n]
        self.offset += n
        return chunk


def read_ct2_model(data: bytes | memoryview) -> Ct2Model:
    """Parse a CTranslate2 `model.bin`.

    Arrays are read-only views into `data`, except bfloat16 ones, which numpy
    cannot hold and which are widened to float32 copies.
    """
    cursor = _Cursor(data)
    version = cursor.unpack("I")
    if version != SUPPORTED_BINARY_VERSION:
        raise Ct2FormatError(f"binary version {version} is not supported (expected {SUPPORTED_BINARY_VERSION})")
    spec_name = cursor.string()
    spec_revision = cursor.unpack("I")

    variables = {}
    for _ in range(cursor.unpack("I")):
        name = cursor.string()
        shape = tuple(cursor.unpack("I") for _ in range(cursor.unpack("B")))
        dtype_id = cursor.unpack("B")
        if dtype_id >= len(_DTYPES):
            raise Ct2FormatError(f"{name}: unknown dtype id {dtype_id}")
        raw = cursor.take(cursor.unpack("I"))
        variables[name] = _to_array(raw, _DTYPES[dtype_id], shape, name)

    aliases = {}
    for _ in range(cursor.unpack("I")):
        alias = cursor.string()
        aliases[alias] = cursor.string()

    if cursor.offset != len(cursor.data):
        raise Ct2FormatError(f"{len(cursor.data) - cursor.offset} trailing bytes after the aliases")
    return Ct2Model(spec_name, spec_revision, variables, aliases)


def _to_array(raw: memoryview, dtype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    if dtype == "bfloat16":
        # bfloat16 is the upper half of a float32.
        array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
    if array.size != int(np.prod(shape)):
        raise Ct2FormatError(f"{name}: {array.size} values do not fill shape {shape}")
    return array.reshape(shape)


def whisper_config_from_ct2(model: Ct2Model, **overrides: Any) -> WhisperConfig:
    """Architecture hyperparameters as stored in the file; `overrides` adds token ids etc."""
    _require_whisper(model)
    token_embeddings = model["decoder/embeddings/weight"]
    return WhisperConfig(
        vocab_size=token_embeddings.shape[0],
        d_model=token_embeddings.shape[1],
        num_mel_bins=model["encoder/conv1/weight"].shape[1],
        encoder_layers=_count_layers(model, "encoder"),
        decoder_layers=_count_layers(model, "decoder"),
        encoder_attention_heads=model.scalar("encoder/num_heads"),
        decoder_attention_heads=model.scalar("decoder/num_heads"),
        encoder_ffn_dim=model["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=model["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=model["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=model["decoder/position_encodings/encodings"].shape[0],
        tie_word_embeddings=model.aliases.get("decoder/projection/weight") == "decoder/embeddings/weight",
        **overrides,
    )


def whisper_state_dict_from_ct2(model: Ct2Model) -> dict[str, torch.Tensor]:
    """Map CTranslate2 Whisper variables onto `WhisperForConditionalGeneration` parameter names."""
    _require_whisper(model)
    if any(name.endswith("/weight_scale") for name in model.variables):
        # int8/int16 weights would need their scales applied; only float conversions are mapped.
        raise Ct2FormatError("integer-quantized CTranslate2 models are not supported; convert with float weights")
    state: dict[str, torch.Tensor] = {}

    def copy(hf_name: str, ct2_name: str) -> None:
        state[hf_name] = torch.from_numpy(model[ct2_name].copy())

    def linear(hf_prefix: str, ct2_prefix: str) -> None:
        copy(f"{hf_prefix}.weight", f"{ct2_prefix}/weight")
        copy(f"{hf_prefix}.bias", f"{ct2_prefix}/bias")

    def layer_norm(hf_prefix: str, ct2_prefix: str) -> None:
        copy(f"{hf_prefix}.weight", f"{ct2_prefix}/gamma")
        copy(f"{hf_prefix}.bias", f"{ct2_prefix}/beta")

    def split_projections(hf_prefix: str, ct2_prefix: str, names: tuple[str, ...]) -> None:
        weights = np.split(model[f"{ct2_prefix}/weight"], len(names))
        biases = np.split(model[f"{ct2_prefix}/bias"], len(names))
        for name, weight, bias in zip(names, weights, biases):
            state[f"{hf_prefix}.{name}.weight"] = torch.from_numpy(weight.copy())
            if name == "k_proj":
                # Whisper's key projection has no bias; CTranslate2 stores zeros
                # to fuse it with q/v, so anything else would be lost silently.
                if np.any(bias):
                    raise Ct2FormatError(f"{ct2_prefix}: non-zero key bias cannot be represented")
            else:
                state[f"{hf_prefix}.{name}.bias"] = torch.from_numpy(bias.copy())

    def self_attention_and_ffn(hf_layer: str, ct2_layer: str) -> None:
        qkv = ("q_proj", "k_proj", "v_proj")
        split_projections(f"{hf_layer}.self_attn", f"{ct2_layer}/self_attention/linear_0", qkv)
        linear(f"{hf_layer}.self_attn.out_proj", f"{ct2_layer}/self_attention/linear_1")
        layer_norm(f"{hf_layer}.self_attn_layer_norm", f"{ct2_layer}/self_attention/layer_norm")
        linear(f"{hf_layer}.fc1", f"{ct2_layer}/ffn/linear_0")
        linear(f"{hf_layer}.fc2", f"{ct2_layer}/ffn/linear_1")
        layer_norm(f"{hf_layer}.final_layer_norm", f"{ct2_layer}/ffn/layer_norm")

    linear("model.encoder.conv1", "encoder/conv1")
    linear("model.encoder.conv2", "encoder/conv2")
    copy("model.encoder.embed_positions.weight", "encoder/position_encodings/encodings")
    layer_norm("model.encoder.layer_norm", "encoder/layer_norm")
    for i in range(_count_layers(model, "encoder")):
        self_attention_and_ffn(f"model.encoder.layers.{i}", f"encoder/layer_{i}")

    copy("model.decoder.embed_tokens.weight", "decoder/embeddings/weight")
    copy("model.decoder.embed_positions.weight", "decoder/position_encodings/encodings")
    layer_norm("model.decoder.layer_norm", "decoder/layer_norm")
    copy("proj_out.weight", "decoder/projection/weight")
    for i in range(_count_layers(model, "decoder")):
        hf_layer, ct2_layer = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        self_attention_and_ffn(hf_layer, ct2_layer)
        linear(f"{hf_layer}.encoder_attn.q_proj", f"{ct2_layer}/attention/linear_0")
        split_projections(f"{hf_layer}.encoder_attn", f"{ct2_layer}/attention/linear_1", ("k_proj", "v_proj"))
        linear(f"{hf_layer}.encoder_attn.out_proj", f"{ct2_layer}/attention/linear_2")
        layer_norm(f"{hf_layer}.encoder_attn_layer_norm", f"{ct2_layer}/attention/layer_norm")
    return state


def whisper_from_ct2(model: Ct2Model, **config_overrides: Any) -> WhisperForConditionalGeneration:
    """A transformers Whisper holding the file's weights in the file's dtype."""
    config = whisper_config_from_ct2(model, **config_overrides)
    state = whisper_state_dict_from_ct2(model)
    whisper = WhisperForConditionalGeneration(config)
    whisper.load_state_dict(state, strict=True)
    return whisper.to(state["model.decoder.embed_tokens.weight"].dtype).eval()


def _require_whisper(model: Ct2Model) -> None:
    if model.spec_name != WHISPER_SPEC_NAME:
        raise Ct2FormatError(f"expected a {WHISPER_SPEC_NAME} model, got {model.spec_name!r}")


def _count_layers(model: Ct2Model, stack: str) -> int:
    pattern = re.compile(rf"{stack}/layer_(\d+)/")
    indices = {int(m.group(1)) for name in model.variables if (m := pattern.match(name))}
    if indices != set(range(len(indices))) or not indices:
        raise Ct2FormatError(f"{stack} layers are missing or not numbered 0..n-1: {sorted(indices)}")
    return len(indices)
