"""The language side of a graft: any causal LM, or a vision-language model with its vision path intact."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    PreTrainedModel,
)

logger = logging.getLogger(__name__)

# Submodule names under which vision-language models keep their vision tower; LoRA never goes there.
VISION_MODULE_MARKERS = ("visual", "vision_tower", "vision_model", "multi_modal_projector")


@dataclass
class LanguageModel:
    model: PreTrainedModel
    tokenizer: Any
    processor: Any | None


def is_vision_language(config: Any) -> bool:
    return getattr(config, "vision_config", None) is not None


def load_llm(name_or_path: str, dtype: torch.dtype = torch.float32) -> LanguageModel:
    """Load a causal LM (or a VLM such as Qwen2-VL) with its tokenizer, frozen and in eval mode."""
    config = AutoConfig.from_pretrained(name_or_path)
    processor = None
    if is_vision_language(config):
        model = AutoModelForImageTextToText.from_pretrained(name_or_path, dtype=dtype)
        processor = AutoProcessor.from_pretrained(name_or_path)
        tokenizer = processor.tokenizer
    else:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    model.eval().requires_grad_(False)
    logger.info("loaded %s from %s", type(model).__name__, name_or_path)
    return LanguageModel(model, tokenizer, processor)


def lora_target_modules(model: nn.Module, names: list[str]) -> list[str]:
    """Full names of the linear layers called `names` in the language model, skipping any vision tower."""
    targets = []
    for full_name, module in model.named_modules():
        parts = full_name.split(".")
        if not isinstance(module, nn.Linear) or parts[-1] not in names:
            continue
        if any(marker in part for part in parts for marker in VISION_MODULE_MARKERS):
            continue
        targets.append(full_name)
    if not targets:
        raise ValueError(f"no linear layer of the LLM is named any of {names}")
    return targets
