"""GraftModel: audio encoder -> projector -> LLM, joined through `inputs_embeds`.

The composition follows transformers' Qwen2-Audio: the prompt is embedded by the LLM's own embedding
table, projected audio frames are scattered into the audio positions once, and the LLM's own
`forward` and `generate` do the rest. Nothing in transformers is forked or patched.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import StaticCache

from audiograft.modeling.config import EncoderLoraSettings, GraftConfig, LoraSettings
from audiograft.modeling.encoders import AudioEncoder, load_encoder
from audiograft.modeling.llms import (
    LanguageModel,
    is_vision_language,
    load_llm,
    lora_target_modules,
    use_grouped_query_sdpa,
)
from audiograft.modeling.processor import (
    IGNORE_INDEX,
    Audio,
    AudioSettings,
    GraftProcessor,
)
from audiograft.modeling.projectors import build_projector
from audiograft.presets.pretrained import resolve_base, resolve_model_dir

logger = logging.getLogger(__name__)

PROJECTOR_WEIGHTS = "projector.safetensors"
LORA_DIR = "lora"
# The encoder's LoRA adapter (GraftConfig.encoder_lora): its tensors alone, named as inside the encoder.
ENCODER_LORA_WEIGHTS = "encoder_lora.safetensors"
ENCODER_PREFIX = "encoder."
# Where the encoder's own parameters sit among the graft's (GraftModel.encoder is an AudioEncoder around `model`).
GRAFT_ENCODER_PREFIX = "encoder.model."
# Static KV caches are allocated in multiples of this many positions, so that batches of similar prompt length
# share one compiled decode step instead of compiling their own.
STATIC_CACHE_BUCKET = 256
# Cosine similarities times this are the CTC head's logits: without a scale they span [-1, 1], too flat to pick one
# of tens of thousands of tokens (a fixed scale, as in normalised softmax classifiers; the head learns nothing).
CTC_COSINE_SCALE = 30.0


def default_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 on accelerators; fp32 on CPU, where bf16 arithmetic is slower."""
    return torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16


class GraftModel(nn.Module):
    """`processor` (a GraftProcessor, built from the configs) turns audio and text into this model's inputs."""

    def __init__(self, config: GraftConfig, encoder: AudioEncoder, language_model: LanguageModel):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.llm = language_model.model
        self.processor = GraftProcessor(language_model.tokenizer, config,
                                        AudioSettings.from_encoder_config(encoder.model.config),
                                        language_model.processor)
        use_grouped_query_sdpa(self.llm)
        d_llm = self.llm.get_input_embeddings().embedding_dim
        self.projector = build_projector(config, encoder.hidden_size, d_llm).to(self.llm.dtype)
        # Vision-language models find their image positions and M-RoPE indices from input_ids,
        # so they get the ids alongside the embeddings; plain causal LMs accept only one of the two.
        self._llm_takes_ids_with_embeds = is_vision_language(self.llm.config)
        # Where a saved graft was loaded from: companions trained for it (word aligner, confidence calibrator) live there.
        self.directory: Path | None = None
        # LoRA folded into the LLM's weights in memory (inference): the adapter can no longer be saved apart.
        self.lora_merged = False

    @classmethod
    def from_config(
        cls, config: GraftConfig, device: str = "cpu", dtype: torch.dtype | None = None, llm_in_4bit: bool = False
    ) -> GraftModel:
        """A graft with a freshly initialised projector on top of the named base models.

        `llm_in_4bit` loads the LLM's linear layers in NF4 (bitsandbytes) for QLoRA training.
        """
        dtype = dtype or default_dtype(device)
        encoder = load_encoder(resolve_base(config.encoder), config.encoder_context, dtype, config.encoder_layer)
        llm = load_llm(resolve_base(config.llm), dtype, quantize_4bit_on=device if llm_in_4bit else None)
        model = cls(config, encoder, llm)
        if config.lora is not None:
            model.add_lora(config.lora)
        if config.encoder_lora is not None:
            model.add_encoder_lora(config.encoder_lora)
        return model.to(device)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        llm_in_4bit: bool = False,
        merge_lora: bool = False,
    ) -> GraftModel:
        """Rebuild a saved graft: base models by name, then the trained projector and LoRA weights.

        `directory` is a saved graft, or "default" for the built-in default model. `merge_lora` folds the
        adapter into the LLM's weights for inference: the same outputs without the adapter's extra kernels in
        every layer (a 4-bit LLM keeps its adapter, since merging would dequantize it).
        """
        directory = resolve_model_dir(directory)
        config = GraftConfig.load(directory)
        lora = config.lora
        config.lora = None
        model = cls.from_config(config, device, dtype, llm_in_4bit)
        saved = AudioSettings.load(directory)
        if saved is not None and saved != model.processor.audio:
            raise ValueError(f"{directory}: its processor was saved for an encoder hearing {saved}, but the encoder "
                             f"{config.encoder} hears {model.processor.audio}")
        model.projector.load_state_dict(load_file(directory / PROJECTOR_WEIGHTS, device=str(device)))
        if config.encoder_lora is not None:
            if not (directory / ENCODER_LORA_WEIGHTS).is_file():
                raise FileNotFoundError(f"{directory}: its config names an encoder LoRA but {ENCODER_LORA_WEIGHTS} "
                                        "is missing")
            model.encoder.load_lora_state_dict(load_file(directory / ENCODER_LORA_WEIGHTS, device=str(device)))
            # Loaded for use, not training, as the LLM's adapter is: make_trainable turns it on for stage 2.
            model.encoder.requires_grad_(False)
        if lora is not None:
            model.llm = PeftModel.from_pretrained(model.llm, directory / LORA_DIR)
            model.config.lora = lora
            if merge_lora and not llm_in_4bit:
                model.llm = model.llm.merge_and_unload()
                model.lora_merged = True
        model.directory = directory
        return model.eval()

    def save_pretrained(self, directory: str | Path, trained: dict[str, torch.Tensor] | None = None) -> Path:
        """Write only what was trained: projector (and LoRA) safetensors plus the config naming the bases.

        `trained` holds full (gathered) tensors of the trained parameters under their graft names, for
        callers whose own parameters are sharded (FSDP training).
        """
        if self.lora_merged:
            raise ValueError("this graft's LoRA was merged into the LLM for inference: save it with merge(), or load "
                             "it without merge_lora to save the adapter")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if trained is None:
            projector, lora, encoder_lora = self.projector.state_dict(), None, {}
        else:
            projector = {k.removeprefix("projector."): v for k, v in trained.items() if k.startswith("projector.")}
            lora = {k.removeprefix("llm."): v for k, v in trained.items() if k.startswith("llm.")}
            encoder_lora = {k.removeprefix(GRAFT_ENCODER_PREFIX): v for k, v in trained.items()
                            if k.startswith(GRAFT_ENCODER_PREFIX) and "lora_" in k}
        save_file({k: v.contiguous() for k, v in projector.items()}, directory / PROJECTOR_WEIGHTS)
        if isinstance(self.llm, PeftModel):
            self.llm.save_pretrained(directory / LORA_DIR, state_dict=lora)
        if self.encoder.has_lora:
            # Trained tensors win; an adapter that did not train this stage (stage 1 from a stage-2 graft) is saved as
            # it is, so that the saved graft always holds the whole adapter its config names.
            adapter = {**self.encoder.lora_state_dict(), **encoder_lora}
            save_file({k: v.detach().cpu().contiguous() for k, v in adapter.items()}, directory / ENCODER_LORA_WEIGHTS)
        self.config.save(directory)
        self.processor.save_pretrained(directory)
        return directory

    def add_lora(self, settings: LoraSettings) -> None:
        """Stage 2: LoRA adapters on the LLM's linear layers; the encoder and any vision tower stay untouched."""
        lora_config = LoraConfig(
            r=settings.r,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=lora_target_modules(self.llm, settings.target_modules),
            task_type="CAUSAL_LM",
        )
        self.llm = get_peft_model(self.llm, lora_config)
        self.config.lora = settings

    def add_encoder_lora(self, settings: EncoderLoraSettings) -> None:
        """LoRA adapters on the encoder's top layers (AudioEncoder.add_lora), which stage 2 trains beside the LLM's."""
        self.encoder.add_lora(settings)
        self.config.encoder_lora = settings

    def merge(self, directory: str | Path) -> Path:
        """Write a standalone graft: LoRA merged into the LLM (and the encoder's into the encoder), base weights
        copied in, no adapters left."""
        directory = Path(directory)
        llm = self.llm.merge_and_unload() if isinstance(self.llm, PeftModel) else self.llm
        llm.save_pretrained(directory / "llm")
        (self.processor.llm_processor or self.processor.tokenizer).save_pretrained(directory / "llm")
        encoder_dir = directory / "encoder"
        encoder_dir.mkdir(parents=True, exist_ok=True)
        encoder_model = self.encoder.model
        encoder_model.config.save_pretrained(encoder_dir)
        # merged_state_dict is the plain state_dict for an encoder without LoRA; with one, the adapter is folded in.
        state = {ENCODER_PREFIX + k: v.contiguous() for k, v in self.encoder.merged_state_dict().items()}
        save_file(state, encoder_dir / "model.safetensors")
        save_file({k: v.contiguous() for k, v in self.projector.state_dict().items()}, directory / PROJECTOR_WEIGHTS)
        merged = GraftConfig.from_dict({**self.config.to_dict(), "encoder": "encoder", "llm": "llm", "lora": None,
                                        "encoder_lora": None})
        merged.save(directory)
        self.processor.save_pretrained(directory)
        return directory

    @property
    def _no_split_modules(self) -> list[str]:
        """The layer classes FSDP shards one by one (accelerate's transformer auto-wrap reads this name)."""
        present = {type(module).__name__ for module in self.modules()}
        declared = set(getattr(self.llm, "_no_split_modules", None) or []) | set(self.encoder.model._no_split_modules or [])
        return sorted(declared & present)

    @property
    def device(self) -> torch.device:
        return self.projector.parameters().__next__().device

    def encode_audio(
        self, input_features: torch.Tensor, feature_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder frames (clips, frames, d_encoder) and the number that belong to each clip.

        `generate` takes them back as `encoded_audio`, so a caller that needs the frames too (word alignment)
        runs the encoder once.
        """
        encoder_trainable = any(p.requires_grad for p in self.encoder.parameters())
        with torch.set_grad_enabled(encoder_trainable and torch.is_grad_enabled()):
            return self.encoder(input_features.to(self.device), feature_lengths.to(self.device))

    def embed_audio(self, frames: torch.Tensor, frame_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected audio tokens (clips, tokens, d_llm) and the number that belong to each clip."""
        return self.projector(frames.to(self.projector_dtype), frame_lengths)

    @property
    def projector_dtype(self) -> torch.dtype:
        return next(self.projector.parameters()).dtype

    def _merge_audio(self, input_ids, audio_mask, audio_tokens: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The prompts' embeddings with the projected audio tokens (embed_audio's output) at the audio positions."""
        inputs_embeds = self.llm.get_input_embeddings()(input_ids)
        tokens, token_lengths = audio_tokens
        valid = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < token_lengths[:, None]
        audio_tokens = tokens[valid]
        if int(audio_mask.sum()) != audio_tokens.shape[0]:
            raise ValueError(
                f"the prompts hold {int(audio_mask.sum())} audio positions but the clips give "
                f"{audio_tokens.shape[0]} audio tokens"
            )
        return inputs_embeds.masked_scatter(audio_mask[..., None], audio_tokens.to(inputs_embeds.dtype))

    def _embed_prompts(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        audio_mask: torch.Tensor,
        input_features: torch.Tensor | None,
        feature_lengths: torch.Tensor | None,
        encoded_audio: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The prompt ids and mask on the model's device, their embeddings with the audio merged in (encoding the
        features unless `encoded_audio` brings the frames), and the projected audio tokens with their counts; what
        `forward` and `generate` both start from."""
        device = self.device
        input_ids, attention_mask, audio_mask = input_ids.to(device), attention_mask.to(device), audio_mask.to(device)
        if encoded_audio is None:
            encoded_audio = self.encode_audio(input_features, feature_lengths)
        audio_tokens = self.embed_audio(*(t.to(device) for t in encoded_audio))
        return input_ids, attention_mask, self._merge_audio(input_ids, audio_mask, audio_tokens), audio_tokens

    def ctc_loss(self, audio_tokens: tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """CTC of the projected audio tokens against the answers' own tokens (special tokens left out), each audio
        token scored by its cosine similarity to every row of the LLM's input embeddings; blank is the tokenizer's
        pad (else end) token, which no answer text holds. An auxiliary loss for training: it asks each audio token to
        resemble the embedding of what is said there, supervision the next-token loss gives only through the LLM."""
        tokens, token_lengths = audio_tokens
        tokenizer = self.processor.tokenizer
        blank = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        special = torch.tensor(sorted(tokenizer.all_special_ids), device=labels.device)
        targets = [row[(row != IGNORE_INDEX) & ~torch.isin(row, special)] for row in labels]
        vocabulary = nn.functional.normalize(self.llm.get_input_embeddings().weight.float(), dim=-1)
        logits = CTC_COSINE_SCALE * nn.functional.normalize(tokens.float(), dim=-1) @ vocabulary.T
        return nn.functional.ctc_loss(
            logits.log_softmax(-1).transpose(0, 1),
            torch.cat(targets),
            token_lengths,
            torch.tensor([len(t) for t in targets], device=labels.device),
            blank=blank,
            zero_infinity=True,  # a clip with more answer tokens than audio tokens adds nothing rather than inf
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        audio_mask: torch.Tensor,
        input_features: torch.Tensor | None = None,
        feature_lengths: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        encoded_audio: tuple[torch.Tensor, torch.Tensor] | None = None,
        ctc_weight: float = 0.0,
        **llm_kwargs: Any,
    ):
        """The LLM's own forward on the merged embeddings; with labels, the mean cross-entropy over the answers,
        and logits only at the positions that predict them; with ctc_weight too, `loss` adds ctc_weight times
        `ctc_loss` (the auxiliary CTC of the audio tokens), and the output carries both parts.

        `encoded_audio` (encoder frames and their lengths, e.g. from the encoder cache) replaces the features.
        """
        device = self.device
        input_ids, attention_mask, inputs_embeds, audio_tokens = self._embed_prompts(
            input_ids, attention_mask, audio_mask, input_features, feature_lengths, encoded_audio
        )
        if self._llm_takes_ids_with_embeds:
            llm_kwargs["input_ids"] = input_ids
        llm_kwargs = _to_device(llm_kwargs, device)
        if labels is None:
            return self.llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **llm_kwargs)
        # Logits only where a next token is learned (the answers): with a 150k vocabulary, logits over a long
        # audio prompt cost more time and memory than they are worth, and none of them enters the loss.
        labels = labels.to(device)
        predicting = (labels[:, 1:] != IGNORE_INDEX).any(0).nonzero().squeeze(1)
        output = self.llm(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, logits_to_keep=predicting, **llm_kwargs
        )
        targets = labels[:, predicting + 1]
        output.loss = nn.functional.cross_entropy(
            output.logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX
        )
        if ctc_weight:
            # Items, not plain attributes: accelerate's mixed-precision wrapper rebuilds the output from its items.
            output["answer_loss"] = output.loss
            output["ctc_loss"] = self.ctc_loss(audio_tokens, labels)
            output["loss"] = output.answer_loss + ctc_weight * output.ctc_loss
        return output

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        audio_mask: torch.Tensor,
        input_features: torch.Tensor | None = None,
        feature_lengths: torch.Tensor | None = None,
        encoded_audio: tuple[torch.Tensor, torch.Tensor] | None = None,
        static_cache: bool = False,
        **generate_kwargs: Any,
    ) -> Any:
        """The LLM's own `generate` from the merged embeddings; returns only the new tokens.

        `encoded_audio` (from `encode_audio`) replaces the features when the frames are already computed. With
        `return_dict_in_generate=True` the LLM's output object comes back, its `sequences` cut to the new tokens.
        `static_cache` decodes into a preallocated KV cache, which on a GPU lets `generate` compile the decode step
        into CUDA graphs (transformers does this itself for static caches): the first batch of each shape pays the
        compilation, every later one runs without Python overhead per layer. Needs `max_new_tokens`.
        """
        device = self.device
        input_ids, attention_mask, inputs_embeds, _ = self._embed_prompts(
            input_ids, attention_mask, audio_mask, input_features, feature_lengths, encoded_audio
        )
        generate_kwargs.setdefault("eos_token_id", self.processor.stop_token_ids)
        generate_kwargs.setdefault("pad_token_id", self.processor.pad_id)
        generate_kwargs.setdefault("do_sample", False)
        if static_cache:
            if "max_new_tokens" not in generate_kwargs:
                raise ValueError("static_cache needs max_new_tokens, which sizes the cache")
            length = input_ids.shape[1] + generate_kwargs["max_new_tokens"]
            bucketed = -(-length // STATIC_CACHE_BUCKET) * STATIC_CACHE_BUCKET
            generate_kwargs["past_key_values"] = StaticCache(config=self.llm.config, max_cache_len=bucketed)
        # input_ids travel with the embeddings so that generate tracks the prompt (and VLMs their M-RoPE);
        # the first step uses the embeddings, and the returned sequences begin with the prompt ids.
        output = self.llm.generate(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            **_to_device(generate_kwargs, device),
        )
        if isinstance(output, torch.Tensor):
            return output[:, input_ids.shape[1] :]
        output.sequences = output.sequences[:, input_ids.shape[1] :]
        return output

    def transcribe(
        self, audios: list[Audio], instruction: str | None = None, max_new_tokens: int | None = None,
        **generate_kwargs: Any,
    ) -> list[str]:
        """Greedy answers for a batch of clips (the plain path; `Transcriber` adds long-form and timestamps).

        `generate_kwargs` go to `generate` (e.g. static_cache=True, min_new_tokens).
        """
        batch = self.processor(audios, instruction, feature_device=self.device)
        if max_new_tokens is None:
            max_new_tokens = answer_token_budget(float(batch["feature_lengths"].max()) / self.encoder.feature_rate)
        tokens = self.generate(**batch, max_new_tokens=max_new_tokens, **generate_kwargs)
        return [text.strip() for text in self.processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)]


def answer_token_budget(seconds: float, tokens_per_second: float = 8.0, slack: int = 16) -> int:
    """Most new tokens worth generating for `seconds` of audio. Speech runs at about 3 tokens per second,
    so this generous bound only stops runaway loops."""
    return int(slack + tokens_per_second * seconds)


def _to_device(values: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in values.items()}
