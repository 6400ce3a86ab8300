"""The language side of a graft: any causal LM, or a vision-language model with its vision path intact."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import (
    AttentionInterface,
    AttentionMaskInterface,
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
)
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

logger = logging.getLogger(__name__)

GROUPED_SDPA = "audiograft_grouped_sdpa"
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
    model_class = AutoModelForImageTextToText if is_vision_language(config) else AutoModelForCausalLM
    model = model_class.from_pretrained(name_or_path, **loading)
    model.eval().requires_grad_(False)
    logger.info("loaded %s from %s", type(model).__name__, name_or_path)
    return LanguageModel(model, *load_tokenizer(name_or_path))


def load_tokenizer(name_or_path: str) -> tuple[Any, Any | None]:
    """The LLM's tokenizer and, for a vision-language model, its processor (which holds that tokenizer); no weights."""
    if is_vision_language(AutoConfig.from_pretrained(name_or_path)):
        processor = AutoProcessor.from_pretrained(name_or_path)
        return processor.tokenizer, processor
    return AutoTokenizer.from_pretrained(name_or_path), None


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


def grouped_query_sdpa(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, but grouped-query attention under a mask never copies keys and values per head.

    Stock SDPA can only share a key-value head among its query heads when there is no mask; with one (left-padded
    batches, a static KV cache) it repeats the keys and values for every query head, which at a 7B model's batch of
    256 moves ~7x the KV cache through memory at every decode step. Here the query heads of a group are folded into
    the query length instead: the same scores, one copy of the cache. Everything else is the stock function.
    """
    kv_heads = key.shape[1]
    groups = query.shape[1] // kv_heads
    if groups == 1 or attention_mask is None or attention_mask.shape[1] != 1 or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs)
    batch, heads, length, dim = query.shape
    # Query head h uses key-value head h // groups; row g * length + t of a folded group is query t of its head g.
    folded = query.reshape(batch, kv_heads, groups * length, dim)
    mask = attention_mask.repeat(1, 1, groups, 1) if attention_mask.shape[2] == length else attention_mask
    output = nn.functional.scaled_dot_product_attention(folded, key, value, attn_mask=mask, dropout_p=dropout,
                                                        scale=scaling)
    return output.reshape(batch, heads, length, value.shape[-1]).transpose(1, 2).contiguous(), None


AttentionInterface.register(GROUPED_SDPA, grouped_query_sdpa)
AttentionMaskInterface.register(GROUPED_SDPA, sdpa_mask)


def use_grouped_query_sdpa(model: PreTrainedModel) -> bool:
    """Switch a causal LM that attends through SDPA with grouped-query heads to `grouped_query_sdpa`.

    Vision-language models keep their attention: their vision towers dispatch on the same setting with other inputs.
    """
    config = model.config
    heads, kv_heads = getattr(config, "num_attention_heads", None), getattr(config, "num_key_value_heads", None)
    if is_vision_language(config) or config._attn_implementation != "sdpa" or not heads or heads == kv_heads:
        return False
    model.set_attn_implementation(GROUPED_SDPA)
    return True
