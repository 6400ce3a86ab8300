"""The language side of a graft: any causal LM, or a vision-language model with its vision path intact."""

from __future__ import annotations

import importlib.util
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
    BitsAndBytesConfig,
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


def load_llm(
    name_or_path: str, dtype: torch.dtype = torch.float32, quantize_4bit_on: str | torch.device | None = None
) -> LanguageModel:
    """Load a causal LM (or a VLM such as Qwen2-VL) with its tokenizer, frozen and in eval mode.

    `quantize_4bit_on` names a device to load the LLM onto with its linear layers in 4-bit NF4
    (bitsandbytes), as QLoRA trains; the weights are quantized as they load, never held in full.
    """
    config = AutoConfig.from_pretrained(name_or_path)
    loading: dict[str, Any] = {"dtype": dtype}
    if quantize_4bit_on is not None:
        loading["quantization_config"] = nf4_quantization(dtype)
        loading["device_map"] = {"": str(quantize_4bit_on)}
    processor = None
    if is_vision_language(config):
        model = AutoModelForImageTextToText.from_pretrained(name_or_path, **loading)
        processor = AutoProcessor.from_pretrained(name_or_path)
        tokenizer = processor.tokenizer
    else:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, **loading)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    model.eval().requires_grad_(False)
    logger.info("loaded %s from %s", type(model).__name__, name_or_path)
    return LanguageModel(model, tokenizer, processor)


def nf4_quantization(compute_dtype: torch.dtype) -> BitsAndBytesConfig:
    """QLoRA's quantization: NF4 weights, double-quantized constants, matmuls in `compute_dtype`."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError("QLoRA needs bitsandbytes: `pip install bitsandbytes`, or set qlora: false to train plain LoRA")
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
        # Vision towers stay in full precision: they are frozen and small, and LoRA never touches them.
        llm_int8_skip_modules=["lm_head", *VISION_MODULE_MARKERS],
    )


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
