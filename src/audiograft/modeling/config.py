"""GraftConfig: everything needed to rebuild a graft from its base models and its adapter."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ProjectorType = Literal["linear", "pool", "stack"]
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
class GraftConfig:
    """Names the base encoder and LLM (hub id or local directory) and describes the trained parts.

    encoder_context:
      "trim" runs the encoder on the clip's own length (Ultravox): a 5 s clip costs 250 encoder positions.
      "full" pads every clip to 30 s as Whisper was trained, then drops the padded frames (Qwen2-Audio).
    downsample: frames merged into one LLM token by the `pool` and `stack` projectors (Whisper gives 50 frames/s).
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

    def __post_init__(self) -> None:
        if self.projector not in ("linear", "pool", "stack"):
            raise ValueError(f"projector must be 'linear', 'pool' or 'stack', got {self.projector!r}")
        if self.encoder_context not in ("trim", "full"):
            raise ValueError(f"encoder_context must be 'trim' or 'full', got {self.encoder_context!r}")
        if self.downsample < 1:
            raise ValueError(f"downsample must be >= 1, got {self.downsample}")
        if self.projector == "linear" and self.downsample != 1:
            raise ValueError("the linear projector maps frame to token one to one: set downsample=1")
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)

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
