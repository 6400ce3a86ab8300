"""Base-model architectures from their published hyperparameters, built with random weights.

Speed does not depend on weight values, so a benchmark of a 7B-scale graft needs only the shapes: the
whisper-large-v3-turbo encoder and Qwen2-VL-7B's language model are built here from their configs, as are
the small preset's parts and tiny versions for tests. The tokenizer is a small byte-level BPE with a
ChatML template: token ids change no shape, and it needs no download.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    WhisperConfig,
)
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from audiograft.modeling.config import GraftConfig
from audiograft.modeling.encoders import AudioEncoder
from audiograft.modeling.llms import LanguageModel
from audiograft.modeling.model import GraftModel

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|AUDIO|>",
]
_TOKENIZER_CORPUS = [
    "transcribe the audio please",
    "the quick brown fox jumps over the lazy dog",
    "system user assistant hello world",
    "describe the image and the sound",
] * 20


def chatml_tokenizer(vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained in code, with Qwen's ChatML template and special tokens.

    Its pad token is its EOS token on purpose: the known way such a graft never learns to stop.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_TOKENIZER_CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML,
        extra_special_tokens={"image_token": "<|image_pad|>"},
    )


@dataclass(frozen=True)
class EncoderShape:
    d_model: int
    layers: int
    heads: int
    ffn: int
    mel_bins: int
    positions: int = 1500  # 30 s at 50 positions a second: the convolutions halve the log-mel rate

    def config(self) -> WhisperConfig:
        return WhisperConfig(
            d_model=self.d_model,
            encoder_layers=self.layers,
            encoder_attention_heads=self.heads,
            encoder_ffn_dim=self.ffn,
            num_mel_bins=self.mel_bins,
            max_source_positions=self.positions,
        )


@dataclass(frozen=True)
class LLMShape:
    family: str  # "qwen2" or "llama"
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    rope_theta: float
    tie_embeddings: bool = False
    rms_norm_eps: float = 1e-6

    def config(self, tokenizer: Any) -> Qwen2Config | LlamaConfig:
        config_class = Qwen2Config if self.family == "qwen2" else LlamaConfig
        return config_class(
            vocab_size=self.vocab,
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads,
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
            max_position_embeddings=32768,
            tie_word_embeddings=self.tie_embeddings,
            rms_norm_eps=self.rms_norm_eps,
            bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )


@dataclass(frozen=True)
class Architecture:
    name: str
    encoder: EncoderShape
    llm: LLMShape


ARCHITECTURES = {
    # whisper-large-v3-turbo's encoder + Qwen2-VL-7B's language model (the seed graft). Qwen2-VL's M-RoPE gives
    # text and audio tokens equal temporal, height and width positions, which is 1-D RoPE: Qwen2's layers compute
    # exactly the same thing at exactly the same cost.
    "7b": Architecture(
        "whisper-large-v3-turbo + Qwen2-VL-7B LM",
        EncoderShape(d_model=1280, layers=32, heads=20, ffn=5120, mel_bins=128),
        LLMShape("qwen2", hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4, vocab=152064,
                 rope_theta=1e6),
    ),
    # The built-in small preset: whisper-base's encoder + SmolLM2-135M-Instruct.
    "small": Architecture(
        "whisper-base + SmolLM2-135M",
        EncoderShape(d_model=512, layers=6, heads=8, ffn=2048, mel_bins=80),
        LLMShape("llama", hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3, vocab=49152,
                 rope_theta=1e5, tie_embeddings=True, rms_norm_eps=1e-5),
    ),
    # A few-layer version for tests on CPU.
    "tiny": Architecture(
        "tiny random Whisper + Qwen2",
        EncoderShape(d_model=32, layers=2, heads=4, ffn=64, mel_bins=80),
        LLMShape("qwen2", hidden=48, intermediate=96, layers=2, heads=4, kv_heads=2, vocab=512, rope_theta=1e4),
    ),
}


def random_graft(
    architecture: str | Architecture,
    config: GraftConfig,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    seed: int = 0,
) -> GraftModel:
    """A GraftModel of the named architecture with random weights, built directly on `device`.

    `config.encoder` and `config.llm` are only labels here: nothing is loaded.
    """
    if isinstance(architecture, str):
        architecture = ARCHITECTURES[architecture]
    torch.manual_seed(seed)
    tokenizer = chatml_tokenizer()
    llm_class = Qwen2ForCausalLM if architecture.llm.family == "qwen2" else LlamaForCausalLM
    with torch.device(device):
        encoder_model = WhisperEncoder._from_config(architecture.encoder.config(), dtype=dtype)
        llm = llm_class._from_config(architecture.llm.config(tokenizer), dtype=dtype)
    encoder_model.eval().requires_grad_(False)
    llm.eval().requires_grad_(False)
    graft = GraftModel(config, AudioEncoder(encoder_model, config.encoder_context), LanguageModel(llm, tokenizer, None))
    if config.lora is not None:
        graft.add_lora(config.lora)
    return graft.to(device)
