"""GraftConfig: everything needed to rebuild a graft from its base models and its adapter."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

ProjectorType = Literal["linear", "pool", "stack", "qformer"]
EncoderContext = Literal["trim", "full"]

CONFIG_NAME = "graft_config.json"
DEFAULT_INSTRUCTION = "Transcribe the audio."


@dataclass
class LoraSettings:
    """LoRA on the LLM only; `target_modules` are matched inside the LLM, never the encoder."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class EncoderLoraSettings:
    """LoRA on the audio encoder's top `top_layers` transformer layers (of those that feed the projector), trained in
    stage 2 beside the LLM's LoRA, as Ultravox trains r=8 on its encoder.

    `target_modules` name the linear layers of a Whisper (or Qwen2-Audio) encoder layer. `dropout` is 0 because the
    encoder always runs in eval mode, in training too (its own dropout must stay off): LoRA dropout would then be off
    in training anyway, and 0 says so instead of promising a regulariser that never runs.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    top_layers: int = 2
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
    )

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"encoder_lora.r must be >= 1, got {self.r}")
        if self.top_layers < 1:
            raise ValueError(f"encoder_lora.top_layers must be >= 1, got {self.top_layers}")
        if not self.target_modules:
            raise ValueError("encoder_lora.target_modules must name at least one linear layer")


@dataclass
class GraftConfig:
    """Names the base encoder and LLM (hub id or local directory) and describes the trained parts.

    encoder_context:
      "trim" runs the encoder on the clip's own length (Ultravox): a 5 s clip costs 250 encoder positions.
      "full" pads every clip to 30 s as Whisper was trained, then drops the padded frames (Qwen2-Audio).
    downsample: frames merged into one LLM token by the `pool` and `stack` projectors (Whisper gives 50 frames/s);
      `qformer` gives 3 tokens per window of 3 * downsample frames.
    """

    encoder: str
    llm: str
    projector: ProjectorType = "pool"
    downsample: int = 4
    projector_bias: bool = True
    projector_hidden_size: int | None = None
    encoder_context: EncoderContext = "trim"
    instruction: str = DEFAULT_INSTRUCTION
    system_prompt: str | None = None
    lora: LoraSettings | None = None
    # Which encoder layer's output feeds the projector: None the last (the encoder's own output); k >= 1 the output of
    # the first k transformer layers, which are all that run; negative counts from the top (-2: second to last).
    encoder_layer: int | None = None
    # LoRA on the encoder's top layers, trained in stage 2; None keeps the encoder frozen.
    encoder_lora: EncoderLoraSettings | None = None

    def __post_init__(self) -> None:
        if self.projector not in get_args(ProjectorType):
            raise ValueError(f"projector must be one of {get_args(ProjectorType)}, got {self.projector!r}")
        if self.encoder_context not in get_args(EncoderContext):
            raise ValueError(f"encoder_context must be one of {get_args(EncoderContext)}, got {self.encoder_context!r}")
        if self.downsample < 1:
            raise ValueError(f"downsample must be >= 1, got {self.downsample}")
        if self.projector == "linear" and self.downsample != 1:
            raise ValueError("the linear projector maps frame to token one to one: set downsample=1")
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)
        if isinstance(self.encoder_lora, dict):
            self.encoder_lora = EncoderLoraSettings(**self.encoder_lora)
        # bool is an int in Python; encoder_layer=True is a mistake, never "layer 1". The upper bound needs the
        # encoder's layer count, which AudioEncoder checks when the encoder loads.
        if self.encoder_layer is not None and (
            isinstance(self.encoder_layer, bool) or not isinstance(self.encoder_layer, int) or self.encoder_layer == 0
        ):
            raise ValueError(f"encoder_layer must be None, a layer count >= 1 or a negative index, "
                             f"got {self.encoder_layer!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, values: dict) -> GraftConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown GraftConfig keys: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def load(cls, directory: str | Path) -> GraftConfig:
        """The config saved in `directory`; bases named by a path inside it (a merged graft's) become full paths."""
        directory = Path(directory)
        path = directory / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: not a saved audiograft model directory")
        config = cls.from_dict(json.loads(path.read_text()))
        config.encoder = _inside(config.encoder, directory)
        config.llm = _inside(config.llm, directory)
        return config


def _inside(name_or_path: str, directory: Path) -> str:
    candidate = directory / name_or_path
    return str(candidate) if not Path(name_or_path).is_absolute() and candidate.exists() else name_or_path
