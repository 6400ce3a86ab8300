"""Audio encoders: a Whisper encoder or Qwen2-Audio's audio tower, loaded without any decoder.

Both encoders see log-mel features (100 frames/s, at most 30 s) and give one frame per 20 ms (Qwen2-Audio's tower pools again to 40 ms). `AudioEncoder` returns, for a batch,
the frames of each clip and how many of them belong to the clip, so padding never reaches the LLM.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from safetensors import safe_open
from torch import nn
from transformers import (
    Qwen2AudioEncoder,
    Qwen2AudioEncoderConfig,
    WhisperConfig,
)
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from audiograft.modeling.config import EncoderContext, EncoderLoraSettings

logger = logging.getLogger(__name__)

# Key prefixes under which each checkpoint type keeps its audio encoder; only these tensors are read.
_ENCODER_PREFIXES = {
    "whisper": ("model.encoder.", "encoder."),
    "qwen2_audio": ("audio_tower.", "model.audio_tower."),
    "qwen2_audio_encoder": ("",),
}


# Log-mel frames per second of audio that both encoders were trained on: Whisper's 10 ms hop at 16 kHz.
FEATURE_RATE = 100
# Both encoders open with two convolutions, the second of stride 2: one encoder position per two log-mel frames.
CONV_STRIDE = 2
# peft's name for the one adapter injected into the encoder; it appears in the adapter's tensor names.
ENCODER_ADAPTER = "default"


def encoder_pooling(config: WhisperConfig | Qwen2AudioEncoderConfig) -> int:
    """Encoder positions averaged into one frame after the transformer: Qwen2-Audio's tower pools pairs."""
    return 2 if isinstance(config, Qwen2AudioEncoderConfig) else 1


def window_frames(config: WhisperConfig | Qwen2AudioEncoderConfig) -> int:
    """Log-mel frames in the encoder's window (3000 for Whisper's 30 s), the longest input its positions allow."""
    return config.max_source_positions * CONV_STRIDE


def frame_lengths(feature_lengths: torch.Tensor, pooling: int) -> torch.Tensor:
    """Encoder frames of clips `feature_lengths` log-mel frames long, for an encoder that pools `pooling` positions."""
    positions = (feature_lengths - 1) // CONV_STRIDE + 1
    return (positions - pooling) // pooling + 1


def resolve_encoder_layer(layer: int | None, num_layers: int) -> int:
    """How many transformer layers run for GraftConfig.encoder_layer `layer` in an encoder of `num_layers`:
    None (the last layer) runs them all, k >= 1 the first k, -j all but the top j - 1."""
    if layer is None:
        return num_layers
    if isinstance(layer, bool) or not isinstance(layer, int) or layer == 0 or not -num_layers <= layer <= num_layers:
        raise ValueError(f"encoder_layer={layer!r} does not name a layer of this encoder, which has {num_layers}: "
                         f"give 1..{num_layers}, -{num_layers}..-1, or None for the last")
    return layer if layer > 0 else num_layers + 1 + layer


class AudioEncoder(nn.Module):
    """A Whisper-style encoder that skips the cost of padding.

    context="trim" runs the transformer on the clip's own frames (positional table sliced, padded
    keys masked), so a 5 s clip costs a sixth of a 30 s one. context="full" runs the stock forward on
    30 s of input and drops the padded frames afterwards, exactly as Qwen2-Audio does.

    `layer` (GraftConfig.encoder_layer) picks the layer whose output is returned; the layers above it never run.
    """

    def __init__(
        self, model: WhisperEncoder | Qwen2AudioEncoder, context: EncoderContext = "trim", layer: int | None = None
    ):
        super().__init__()
        self.model = model
        self.context = context
        self.pooling = encoder_pooling(model.config)
        self.layer = layer
        self.used_layers = resolve_encoder_layer(layer, len(model.layers))

    @property
    def hidden_size(self) -> int:
        return self.model.config.d_model

    @property
    def num_mel_bins(self) -> int:
        return self.model.config.num_mel_bins

    @property
    def max_frames(self) -> int:
        """Mel frames in a 30 s window, the longest input the positional table allows."""
        return window_frames(self.model.config)

    @property
    def feature_rate(self) -> int:
        """Log-mel frames per second of audio."""
        return FEATURE_RATE

    @property
    def frame_seconds(self) -> float:
        """Seconds of audio per output frame: 20 ms (the convolutions halve the log-mel rate), 40 ms after
        Qwen2-Audio's pooling."""
        return CONV_STRIDE * self.pooling / FEATURE_RATE

    @property
    def max_seconds(self) -> float:
        return self.max_frames / self.feature_rate

    def encode_clips(self, input_features: torch.Tensor, feature_lengths: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
        """Each clip's own encoder frames (frames, d_model) and log-mel length, the clips run as one batch."""
        device = next(self.parameters()).device
        frames, frame_lengths = self(input_features.to(device), feature_lengths.to(device))
        return [(frames[row, :count], int(length))
                for row, (count, length) in enumerate(zip(frame_lengths.tolist(), feature_lengths.tolist()))]

    def forward(self, input_features: torch.Tensor, feature_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """input_features: (batch, mel, frames), padded; feature_lengths: valid frames per clip."""
        if int(feature_lengths.max()) > self.max_frames:
            raise ValueError(f"clips longer than {self.max_seconds:g} s must be split before encoding")
        input_features = input_features.to(self.model.conv1.weight.dtype)
        output_lengths = frame_lengths(feature_lengths, self.pooling)
        if self.context == "full":
            hidden = self._forward_full(input_features, feature_lengths)
        else:
            hidden = self._forward_trimmed(input_features, feature_lengths)
        return hidden[:, : int(output_lengths.max())], output_lengths

    def _forward_full(self, input_features: torch.Tensor, feature_lengths: torch.Tensor) -> torch.Tensor:
        if input_features.shape[-1] < self.max_frames:
            input_features = nn.functional.pad(input_features, (0, self.max_frames - input_features.shape[-1]))
        # Whisper was trained attending to its padding; Qwen2-Audio masks it, and parity needs the same.
        mask = self._key_mask(feature_lengths, self.max_frames // CONV_STRIDE) if self.pooling > 1 else None
        if self.layer is None:
            return self.model(input_features, attention_mask=mask).last_hidden_state
        # The stock forward's steps (its dropout is off: the encoder runs in eval mode), stopping at the chosen layer.
        return self._layers_and_norm(self._embed(input_features), mask)

    def _forward_trimmed(self, input_features: torch.Tensor, feature_lengths: torch.Tensor) -> torch.Tensor:
        # Frames past each clip are zeroed and the window is an even number of frames, so a clip's
        # output does not depend on the clips it is batched with (conv padding sees zeros either way).
        frames = int(feature_lengths.max())
        frames += frames % 2
        valid = torch.arange(frames, device=input_features.device)[None, :] < feature_lengths[:, None]
        features = input_features[..., :frames] * valid[:, None, :].to(input_features.dtype)
        hidden = self._embed(features)
        return self._layers_and_norm(hidden, self._key_mask(feature_lengths, hidden.shape[1]))

    def _embed(self, features: torch.Tensor) -> torch.Tensor:
        """The two convolutions and the positions: the input to the first transformer layer."""
        model = self.model
        hidden = nn.functional.gelu(model.conv1(features))
        hidden = nn.functional.gelu(model.conv2(hidden)).permute(0, 2, 1)
        return hidden + model.embed_positions.weight[: hidden.shape[1]]

    def _layers_and_norm(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The first `used_layers` transformer layers, then the encoder's own ending (Qwen2-Audio's pooling, the
        final layer_norm). Whisper's layers are pre-norm: a layer's output is an unnormalised residual stream that
        only the final layer_norm brings to the scale the encoder's output has, so an intermediate layer gets that
        norm too, and the projector sees frames of the same scale whichever layer feeds it."""
        model = self.model
        for layer in model.layers[: self.used_layers]:
            hidden = layer(hidden, mask)
        if self.pooling > 1:
            hidden = model.avg_pooler(hidden.permute(0, 2, 1)).permute(0, 2, 1)
        return model.layer_norm(hidden)

    def _key_mask(self, feature_lengths: torch.Tensor, positions: int) -> torch.Tensor | None:
        encoded_lengths = frame_lengths(feature_lengths, pooling=1)  # positions before any pooling
        valid = (torch.arange(positions, device=feature_lengths.device)[None, :] < encoded_lengths[:, None]).long()
        probe = torch.zeros(valid.shape[0], positions, 1, dtype=self.model.conv1.weight.dtype, device=valid.device)
        return create_bidirectional_mask(config=self.model.config, inputs_embeds=probe, attention_mask=valid)

    @property
    def has_lora(self) -> bool:
        return any(isinstance(module, LoraLayer) for module in self.model.modules())

    def add_lora(self, settings: EncoderLoraSettings) -> list[str]:
        """LoRA adapters, injected in place, on the `settings.target_modules` linear layers of the top
        `settings.top_layers` of the layers that run (`used_layers`); returns the adapted modules' names.

        The modules keep their names (`model.layers[i].self_attn.q_proj` is now a LoRA layer wrapping the frozen
        linear one), so the encoder runs as before; the adapter's B starts at zero, so its output starts unchanged.
        """
        if self.has_lora:
            raise ValueError("this encoder already has a LoRA adapter")
        if settings.top_layers > self.used_layers:
            raise ValueError(f"encoder_lora.top_layers={settings.top_layers} but only {self.used_layers} encoder "
                             f"layers run (encoder_layer={self.layer})")
        top = range(self.used_layers - settings.top_layers, self.used_layers)
        targets = [f"layers.{index}.{name}" for index in top for name, module in self.model.layers[index].named_modules()
                   if isinstance(module, nn.Linear) and name.split(".")[-1] in settings.target_modules]
        if not targets:
            raise ValueError(f"no linear layer of the encoder's layers is named any of {settings.target_modules}")
        config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                            target_modules=targets)
        inject_adapter_in_model(config, self.model, adapter_name=ENCODER_ADAPTER)
        logger.info("encoder LoRA r=%d on %d linear layers of encoder layers %d..%d", settings.r, len(targets),
                    top.start + 1, top.stop)
        return targets

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter's tensors alone (never the frozen encoder's), named as in the encoder (`self.model`)."""
        return {name: value for name, value in self.model.state_dict().items() if "lora_" in name}

    def load_lora_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load the adapter's tensors; a missing or unexpected name is an error (another adapter, another layout)."""
        expected = set(self.lora_state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(f"the encoder LoRA weights do not fit this encoder's adapter: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
        self.model.load_state_dict(state, strict=False)

    def merged_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights with the LoRA adapter folded in (W + B A * alpha / r), under the plain encoder's
        names: what a standalone encoder without an adapter loads. The encoder itself is left as it is."""
        state = {}
        for name, value in self.model.state_dict().items():
            if "lora_" not in name:
                state[name.replace(".base_layer.", ".")] = value
        with torch.no_grad():
            for name, module in self.model.named_modules():
                if isinstance(module, LoraLayer) and not module.merged:
                    weight = module.get_base_layer().weight
                    delta = sum(module.get_delta_weight(adapter) for adapter in module.active_adapters)
                    state[f"{name}.weight"] = (weight + delta).to(weight.dtype)
        return state


def load_encoder(
    name_or_path: str, context: EncoderContext = "trim", dtype: torch.dtype = torch.float32, layer: int | None = None
) -> AudioEncoder:
    """Load the audio encoder of a Whisper or Qwen2-Audio checkpoint (hub id or local directory).

    Only the encoder's tensors are read from the safetensors files, so a large Whisper decoder or
    Qwen2-Audio's 7B LLM never enters memory. The encoder is frozen and in eval mode. `layer` is
    GraftConfig.encoder_layer, checked against the encoder's layer count here.
    """
    directory = _resolve_checkpoint(name_or_path)
    model_type, config = _encoder_config(directory, name_or_path)
    model_class = WhisperEncoder if model_type == "whisper" else Qwen2AudioEncoder
    with torch.device("meta"):
        model = model_class(config)
    state_dict = _read_prefixed_tensors(directory, _ENCODER_PREFIXES[model_type])
    missing = set(model.state_dict()) - set(state_dict)
    if missing:
        raise ValueError(f"{name_or_path}: encoder weights missing from checkpoint: {sorted(missing)[:5]}")
    model.load_state_dict(state_dict, assign=True, strict=False)
    model.to(dtype).eval().requires_grad_(False)
    logger.info("loaded %s encoder from %s (%d layers)", model_type, name_or_path, config.encoder_layers)
    try:
        return AudioEncoder(model, context, layer)
    except ValueError as error:
        raise ValueError(f"{name_or_path}: {error}") from None


def read_encoder_config(name_or_path: str) -> WhisperConfig | Qwen2AudioEncoderConfig:
    """The encoder's config of a Whisper or Qwen2-Audio checkpoint, reading no weights."""
    return _encoder_config(_resolve_checkpoint(name_or_path, ["*.json"]), name_or_path)[1]


def _encoder_config(directory: Path, name_or_path: str) -> tuple[str, WhisperConfig | Qwen2AudioEncoderConfig]:
    config_dict = json.loads((directory / "config.json").read_text())
    model_type = config_dict.get("model_type")
    if model_type == "whisper":
        return model_type, WhisperConfig.from_dict(config_dict)
    if model_type == "qwen2_audio":
        return model_type, Qwen2AudioEncoderConfig.from_dict(config_dict["audio_config"])
    if model_type == "qwen2_audio_encoder":
        return model_type, Qwen2AudioEncoderConfig.from_dict(config_dict)
    raise ValueError(f"{name_or_path}: unsupported encoder model_type {model_type!r} (whisper or qwen2_audio)")


def _resolve_checkpoint(name_or_path: str, patterns: list[str] | None = None) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        raise FileNotFoundError(f"encoder directory {name_or_path} does not exist")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name_or_path, allow_patterns=patterns or ["*.json", "*.safetensors"]))


def _read_prefixed_tensors(directory: Path, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{directory} holds no .safetensors weights")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as reader:
            for key in reader.keys():
                prefix = next((p for p in prefixes if key.startswith(p)), None)
                if prefix is not None:
                    tensors.setdefault(key[len(prefix) :], reader.get_tensor(key))
    return tensors
