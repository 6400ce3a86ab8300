"""Grouped-query SDPA: the same attention as transformers' SDPA, without repeating keys and values per head."""

import torch
from conftest import LLM_KW, TOKENIZER
from transformers import Qwen2Config, Qwen2ForCausalLM
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from audiograft.modeling.llms import (
    GROUPED_SDPA,
    grouped_query_sdpa,
    use_grouped_query_sdpa,
)


def tiny_qwen2(**overrides) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    config = Qwen2Config(**{**LLM_KW, **overrides}, pad_token_id=TOKENIZER.pad_token_id)
    return Qwen2ForCausalLM(config).eval()


def left_padded_batch():
    ids = torch.randint(10, LLM_KW["vocab_size"], (3, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    mask[2, :7] = 0
    return ids.masked_fill(mask == 0, TOKENIZER.pad_token_id), mask


def test_grouped_sdpa_gives_the_logits_of_sdpa_on_a_left_padded_batch():
    model = tiny_qwen2()
    assert model.config._attn_implementation == "sdpa"
    ids, mask = left_padded_batch()
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
        assert use_grouped_query_sdpa(model)
        assert model.config._attn_implementation == GROUPED_SDPA == "audiograft_grouped_sdpa"
        grouped = model(input_ids=ids, attention_mask=mask).logits
        model.set_attn_implementation("sdpa")
        again = model(input_ids=ids, attention_mask=mask).logits
    valid = mask.bool()
    torch.testing.assert_close(grouped[valid], expected[valid], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, expected)


def test_grouped_sdpa_matches_stock_sdpa_for_prefill_and_decode_masks():
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal, module.training = 3, True, False
    generator = torch.Generator().manual_seed(0)
    key = torch.randn(2, 2, 7, 8, generator=generator)
    value = torch.randn(2, 2, 7, 8, generator=generator)
    for length in (7, 1):  # prefill (mask per query) and one decode step
        query = torch.randn(2, 6, length, 8, generator=generator)
        mask = torch.ones(2, 1, length, 7, dtype=torch.bool).tril(diagonal=7 - length)
        mask[1, :, :, :3] = False  # the second sequence is left-padded
        expected, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.3)
        actual, weights = grouped_query_sdpa(module, query, key, value, mask, scaling=0.3)
        assert weights is None and actual.shape == (2, length, 6, 8)
        torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5)


def test_models_without_grouped_heads_keep_their_attention():
    model = tiny_qwen2(num_key_value_heads=LLM_KW["num_attention_heads"])
    assert not use_grouped_query_sdpa(model)
    assert model.config._attn_implementation == "sdpa"
    eager = tiny_qwen2()
    eager.set_attn_implementation("eager")
    assert not use_grouped_query_sdpa(eager)
    assert eager.config._attn_implementation == "eager"
