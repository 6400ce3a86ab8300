"""audiograft: graft a pretrained audio encoder onto a pretrained LLM so that the LLM hears."""

from audiograft.config import GraftConfig, LoraSettings
from audiograft.model import GraftModel

__all__ = ["GraftConfig", "GraftModel", "LoraSettings"]
__version__ = "0.1.0"
