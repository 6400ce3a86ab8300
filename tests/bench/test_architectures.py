"""Base-model shapes from published hyperparameters, and random-weight grafts built from them."""

import torch
from conftest import make_clips
from transformers import Qwen2ForCausalLM
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from audiograft.bench.architectures import ARCHITECTURES, chatml_tokenizer, random_graft
from audiograft.modeling.config import GraftConfig


def parameters(model):
    return sum(p.numel() for p in model.parameters())


def test_7b_llm_has_qwen2_vl_7b_language_model_shapes():
    with torch.device("meta"):
        llm = Qwen2ForCausalLM(ARCHITECTURES["7b"].llm.config(chatml_tokenizer()))
    config = llm.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads,
            config.intermediate_size, config.vocab_size) == (3584, 28, 28, 4, 18944, 152064)
    assert config.rope_parameters["rope_theta"] == 1e6
    assert llm.lm_head.weight.shape == (152064, 3584)
    assert llm.lm_head.weight is not llm.model.embed_tokens.weight  # untied, as Qwen2-VL-7B
    hidden, kv, ffn, vocab = 3584, 3584 // 28 * 4, 18944, 152064
    layer = (hidden * hidden + hidden) + 2 * (hidden * kv + kv) + hidden * hidden + 3 * hidden * ffn + 2 * hidden
    assert parameters(llm) == 2 * vocab * hidden + 28 * layer + hidden  # 7,615,616,512: the published 7.6B
    assert abs(parameters(llm) - 7.6e9) / 7.6e9 < 0.01


def test_7b_encoder_has_whisper_large_v3_turbo_shapes():
    with torch.device("meta"):
        encoder = WhisperEncoder(ARCHITECTURES["7b"].encoder.config())
    config = encoder.config
    assert (config.d_model, config.encoder_layers, config.encoder_attention_heads, config.encoder_ffn_dim,
            config.num_mel_bins, config.max_source_positions) == (1280, 32, 20, 5120, 128, 1500)
    assert encoder.conv1.weight.shape == (1280, 128, 3)
    assert encoder.embed_positions.weight.shape == (1500, 1280)
    assert 6.3e8 < parameters(encoder) < 6.5e8


def test_a_tiny_random_graft_transcribes_a_batch_on_cpu():
    graft = random_graft("tiny", GraftConfig(encoder="e", llm="l", projector="stack"), dtype=torch.float32)
    assert graft.device.type == "cpu"
    assert all(p.dtype == torch.float32 for p in graft.parameters())
    texts = graft.transcribe(make_clips([1.0, 2.5]), max_new_tokens=4)
    assert len(texts) == 2 and all(isinstance(text, str) for text in texts)


def test_chatml_tokenizer_has_a_template_and_pads_with_eos():
    tokenizer = chatml_tokenizer()
    assert tokenizer.chat_template
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
