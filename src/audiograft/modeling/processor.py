"""GraftProcessor: everything between raw audio and text and the graft's inputs, with no model weights.

As transformers keeps `Qwen2AudioProcessor` apart from its model, the processor owns the log-mel features, the
prompt in the LLM's chat template with its labels, and how many audio positions a clip becomes. Data-loader
workers, the encoder cache and the server hold it instead of the model; it loads from a saved graft alone.

Prompts: the user turn carries an audio marker where each clip goes. The rendered prompt is cut at the markers,
each piece is tokenized on its own, and each clip gets a run of placeholder positions between them:
the positions are known exactly (no special token has to survive tokenization or be added to the
vocabulary), and the model overwrites them with projected audio frames.

Labels cover the assistant answer and its end-of-turn token only. They are built from positions,
never from token identity, so a tokenizer whose pad token is its EOS still learns to stop.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import Qwen2AudioEncoderConfig, WhisperConfig, WhisperFeatureExtractor

from audiograft.audio.io import SAMPLE_RATE, checked_waveform
from audiograft.modeling.config import GraftConfig
from audiograft.modeling.encoders import (
    FEATURE_RATE,
    encoder_pooling,
    frame_lengths,
    read_encoder_config,
    window_frames,
)
from audiograft.modeling.llms import load_tokenizer
from audiograft.modeling.projectors import token_lengths
from audiograft.presets.pretrained import resolve_base, resolve_model_dir

PROCESSOR_CONFIG_NAME = "processor_config.json"
IGNORE_INDEX = -100
AUDIO_MARKER = "<|audiograft:audio|>"

Audio = np.ndarray | list[np.ndarray]


@dataclass
class EncodedPrompt:
    """One example: token ids, which of them are audio positions, labels when training."""

    input_ids: list[int]
    audio_mask: list[bool]
    labels: list[int] | None = None
    vision: dict[str, torch.Tensor] = field(default_factory=dict)


def user_text(instruction: str, n_clips: int) -> str:
    """Where the clips sit in the user turn: before the instruction, numbered when there are several."""
    if n_clips == 1:
        return f"{AUDIO_MARKER}\n{instruction}"
    clips = "\n".join(f"Audio {i}: {AUDIO_MARKER}" for i in range(1, n_clips + 1))
    return f"{clips}\n{instruction}"


def conversation_messages(conversation: list[dict], system_prompt: str | None = None) -> tuple[list[dict], list[Any]]:
    """Plain-text chat messages with an audio marker per clip, and the clips in prompt order.

    Each message's content is a string or a list of parts, {"type": "audio", "audio": ...} or
    {"type": "text", "text": ...}. Clips are numbered across the whole conversation, as Qwen-Audio-Chat
    does ("Audio 1: ...", then "Audio 2: ..." in a later turn), so a question can name any earlier clip.
    `system_prompt` opens a conversation that brings no system message of its own.
    """
    messages, clips = [], []
    for index, message in enumerate(conversation):
        if message.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"message {index}: role must be system, user or assistant, got {message.get('role')!r}")
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        lines = []
        for part in parts or []:
            if part.get("type") == "audio":
                clips.append(part["audio"])
                lines.append(f"Audio {len(clips)}: {AUDIO_MARKER}")
            elif part.get("type") == "text":
                lines.append(part["text"])
            else:
                raise ValueError(f"message {index}: a content part is audio or text, got {part.get('type')!r}")
        messages.append({"role": message["role"], "content": "\n".join(lines)})
    if not messages or messages[-1]["role"] != "user":
        raise ValueError("a conversation ends with a user message, which the model answers")
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages, clips


@dataclass(frozen=True)
class AudioSettings:
    """What the processor knows of the encoder, read from the encoder's config; saved as processor_config.json.

    mel_bins: log-mel channels (80 for Whisper up to large-v2, 128 for large-v3 and Qwen2-Audio).
    window_frames: log-mel frames in the encoder's window (3000 for Whisper's 30 s).
    pooling: encoder positions averaged into one frame (2 for Qwen2-Audio's tower, 1 for Whisper).
    """

    mel_bins: int = 80
    window_frames: int = 3000
    pooling: int = 1

    @classmethod
    def from_encoder_config(cls, config: WhisperConfig | Qwen2AudioEncoderConfig) -> AudioSettings:
        return cls(config.num_mel_bins, window_frames(config), encoder_pooling(config))

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / PROCESSOR_CONFIG_NAME
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> AudioSettings | None:
        """The settings saved in `directory`, or None for a graft saved before processors were (derive them)."""
        path = Path(directory) / PROCESSOR_CONFIG_NAME
        if not path.is_file():
            return None
        values = json.loads(path.read_text())
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{path}: unknown keys {', '.join(unknown)}")
        return cls(**values)


class GraftProcessor:
    """Clips, instruction and answers -> model inputs: log-mel features, token ids, audio positions, labels.

    `config` gives the instruction, the system prompt, how the encoder is run (`encoder_context`) and how the
    projector merges frames; `audio` what the encoder hears; `llm_processor` is a vision-language LLM's own
    processor (Qwen2-VL's), which places images in prompts.
    """

    def __init__(self, tokenizer: Any, config: GraftConfig, audio: AudioSettings, llm_processor: Any = None):
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the LLM tokenizer has no chat template; audiograft prompts through it")
        self.tokenizer = tokenizer
        self.config = config
        self.audio = audio
        self.llm_processor = llm_processor
        self.feature_extractor = WhisperFeatureExtractor(
            feature_size=audio.mel_bins, sampling_rate=SAMPLE_RATE, hop_length=SAMPLE_RATE // FEATURE_RATE
        )
        self.placeholder_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = self.placeholder_id
        self.end_of_turn_id = self._find_end_of_turn()

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> GraftProcessor:
        """The processor of a saved graft ("default": the built-in model), loading no weights: the tokenizer comes
        from the LLM base it names, the audio settings from processor_config.json (else the encoder's config)."""
        directory = resolve_model_dir(directory)
        config = GraftConfig.load(directory)
        audio = AudioSettings.load(directory) or AudioSettings.from_encoder_config(
            read_encoder_config(resolve_base(config.encoder))
        )
        tokenizer, llm_processor = load_tokenizer(resolve_base(config.llm))
        return cls(tokenizer, config, audio, llm_processor)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write processor_config.json; the tokenizer stays with the LLM base and the rest in graft_config.json."""
        return self.audio.save(directory)

    @property
    def instruction(self) -> str:
        return self.config.instruction

    @property
    def max_seconds(self) -> float:
        """The longest clip the encoder hears at once."""
        return self.audio.window_frames / FEATURE_RATE

    def __call__(
        self,
        audios: list[Audio],
        instruction: str | None = None,
        answers: list[str] | None = None,
        images: list[list[Any]] | None = None,
        feature_device: str | torch.device = "cpu",
    ) -> dict[str, torch.Tensor]:
        """Model inputs for a batch: each example has one clip or a list of clips (in prompt order).

        With `answers` the batch is right-padded and carries labels (training); without, it is
        left-padded for generation. `feature_device` computes the log-mel features there (inference
        passes the model's device; data-loader workers stay on the CPU).
        """
        clips_per_example = [[a] if isinstance(a, np.ndarray) else list(a) for a in audios]
        clips = [clip for clips in clips_per_example for clip in clips]
        features, feature_lengths = self.featurize(clips, feature_device)
        counts = iter(self.audio_token_counts(feature_lengths))
        counts_per_example = [[next(counts) for _ in clips] for clips in clips_per_example]
        batch = self._prompt_batch(counts_per_example, instruction, answers, images)
        return {**batch, "input_features": features, "feature_lengths": feature_lengths}

    def prepare_encoded(
        self, encoded: list[tuple[torch.Tensor, int]], instruction: str | None, answers: list[str]
    ) -> dict[str, Any]:
        """A training batch from already-encoded clips: (encoder frames, log-mel length) each, one clip an example."""
        frames = [clip_frames for clip_frames, _ in encoded]
        encoded_lengths = torch.tensor([f.shape[0] for f in frames])
        counts = token_lengths(encoded_lengths, self.config).tolist()
        batch = self._prompt_batch([[count] for count in counts], instruction, answers)
        padded = pad_sequence(frames, batch_first=True)
        feature_lengths = torch.tensor([length for _, length in encoded])
        return {**batch, "encoded_audio": (padded, encoded_lengths), "feature_lengths": feature_lengths}

    def audio_token_counts(self, feature_lengths: torch.Tensor) -> list[int]:
        """LLM positions each clip of `feature_lengths` log-mel frames takes: the encoder's frames (conv stride,
        pooling) merged by the projector."""
        return token_lengths(frame_lengths(feature_lengths, self.audio.pooling), self.config).tolist()

    def featurize(
        self, waveforms: list[np.ndarray], device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Whisper's log-mel features of 16 kHz mono clips, computed on `device`, and the valid frames of each.

        encoder_context "trim" pads to about the batch's longest clip: the padding would be masked and dropped
        anyway, and a 5 s clip costs a sixth of the log-mel work. Each clip's valid frames are those of 30 s of
        padding. "full" pads every clip to 30 s, whose log-mel of silence Whisper saw in training.
        """
        waveforms = [checked_waveform(waveform, f"clip {index}", self.max_seconds)
                     for index, waveform in enumerate(waveforms)]
        hop = self.feature_extractor.hop_length
        longest = max(waveform.size for waveform in waveforms)
        # Trimmed: half a window of silence after the longest clip, so that every clip's last frames see zeros past
        # its end as they do in 30 s of padding, then an even number of frames.
        margin = self.feature_extractor.n_fft // 2
        if self.config.encoder_context == "full":
            samples = self.audio.window_frames * hop
        else:
            samples = -(-(longest + margin) // (2 * hop)) * 2 * hop
        device = torch.device(device)
        padded = torch.zeros(len(waveforms), samples, pin_memory=device.type == "cuda")
        for row, waveform in enumerate(waveforms):
            padded[row, : waveform.size] = torch.from_numpy(np.asarray(waveform, dtype=np.float32))
        lengths = torch.tensor([-(-waveform.size // hop) for waveform in waveforms])
        return self._log_mel(padded.to(device, non_blocking=True)), lengths

    def _log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        # WhisperFeatureExtractor's own torch computation, kept on the device: the extractor returns NumPy, so on a
        # GPU its features would make a round trip through host memory (1 s of a 6 s batch of 256 x 30 s clips).
        extractor = self.feature_extractor
        window = torch.hann_window(extractor.n_fft, device=waveforms.device)
        stft = torch.stft(waveforms, extractor.n_fft, extractor.hop_length, window=window, return_complex=True)
        power = (stft[..., :-1].abs() ** 2).contiguous()
        filters = torch.from_numpy(extractor.mel_filters).to(waveforms.device, torch.float32)
        log_spec = torch.clamp(filters.T @ power, min=1e-10).log10()
        ceiling = log_spec.amax(dim=(1, 2), keepdim=True)
        return (torch.maximum(log_spec, ceiling - 8.0) + 4.0) / 4.0

    def _prompt_batch(
        self,
        counts_per_example: list[list[int]],
        instruction: str | None,
        answers: list[str] | None,
        images: list[list[Any]] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Prompts holding each example's audio positions; right-padded with labels when answers are given."""
        prompts = [
            self.encode(
                counts,
                instruction,
                answer=None if answers is None else answers[index],
                images=None if images is None else images[index],
            )
            for index, counts in enumerate(counts_per_example)
        ]
        return self.collate(prompts, padding_side="left" if answers is None else "right")

    @property
    def stop_token_ids(self) -> list[int]:
        return sorted({self.end_of_turn_id, self.tokenizer.eos_token_id} - {None})

    def encode(
        self,
        audio_token_counts: list[int],
        instruction: str | None = None,
        answer: str | None = None,
        images: list[Any] | None = None,
    ) -> EncodedPrompt:
        """One example's prompt; `instruction` defaults to the graft's own."""
        instruction = instruction or self.config.instruction
        messages = self._messages(user_text(instruction, len(audio_token_counts)), images)
        return self.encode_messages(messages, audio_token_counts, answer, images)

    def encode_messages(
        self,
        messages: list[dict],
        audio_token_counts: list[int],
        answer: str | None = None,
        images: list[Any] | None = None,
    ) -> EncodedPrompt:
        """Any chat (several turns, several clips) whose text holds one AUDIO_MARKER per clip, in clip order."""
        prompt_text = self._render(messages, add_generation_prompt=True)
        pieces = prompt_text.split(AUDIO_MARKER)
        if len(pieces) != len(audio_token_counts) + 1:
            raise ValueError("the chat template altered the audio marker; audiograft cannot place the audio")

        input_ids: list[int] = []
        audio_mask: list[bool] = []
        vision: dict[str, list[torch.Tensor]] = {}
        remaining_images = list(images or [])
        for index, piece in enumerate(pieces):
            ids, piece_vision, remaining_images = self._tokenize_piece(piece, remaining_images)
            for key, value in piece_vision.items():
                vision.setdefault(key, []).append(value)
            input_ids += ids
            audio_mask += [False] * len(ids)
            if index < len(audio_token_counts):
                input_ids += [self.placeholder_id] * audio_token_counts[index]
                audio_mask += [True] * audio_token_counts[index]

        labels = None
        if answer is not None:
            answer_ids, answer_labels = self._answer_tokens(messages, prompt_text, answer)
            labels = [IGNORE_INDEX] * len(input_ids) + answer_labels
            input_ids += answer_ids
            audio_mask += [False] * len(answer_ids)
        return EncodedPrompt(input_ids, audio_mask, labels, {k: torch.cat(v) for k, v in vision.items()})

    def collate(self, prompts: list[EncodedPrompt], padding_side: Literal["left", "right"]) -> dict[str, torch.Tensor]:
        """Pad a batch. Right padding for training (positions start at 0), left padding for generation."""
        width = max(len(p.input_ids) for p in prompts)

        def pad(rows: list[list[int]], fill: int, dtype: torch.dtype) -> torch.Tensor:
            tensors = [torch.tensor(row, dtype=dtype) for row in rows]
            return pad_sequence(tensors, batch_first=True, padding_value=fill, padding_side=padding_side)

        batch = {
            "input_ids": pad([p.input_ids for p in prompts], self.pad_id, torch.long),
            "attention_mask": pad([[1] * len(p.input_ids) for p in prompts], 0, torch.long),
            "audio_mask": pad([p.audio_mask for p in prompts], False, torch.bool),
        }
        if any(p.labels is not None for p in prompts):
            labels = [p.labels or [IGNORE_INDEX] * len(p.input_ids) for p in prompts]
            batch["labels"] = pad(labels, IGNORE_INDEX, torch.long)
        vision_keys = {key for p in prompts for key in p.vision}
        for key in vision_keys:
            batch[key] = torch.cat([p.vision[key] for p in prompts if key in p.vision])
        if vision_keys:
            batch["mm_token_type_ids"] = self._pad_token_types(prompts, width, padding_side)
        return batch

    def _messages(self, text: str, images: list[Any] | None) -> list[dict]:
        messages = [{"role": "system", "content": self.config.system_prompt}] if self.config.system_prompt else []
        content: Any = text
        if images:
            content = [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]
        return messages + [{"role": "user", "content": content}]

    def _render(self, messages: list[dict], add_generation_prompt: bool) -> str:
        renderer = self.llm_processor if self.llm_processor is not None else self.tokenizer
        return renderer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _tokenize_piece(self, piece: str, images: list[Any]) -> tuple[list[int], dict[str, torch.Tensor], list[Any]]:
        image_token = getattr(self.llm_processor, "image_token", None)
        n_images = piece.count(image_token) if image_token else 0
        if n_images == 0:
            return self.tokenizer(piece, add_special_tokens=False)["input_ids"], {}, images
        if n_images > len(images):
            raise ValueError(f"the prompt has {n_images} image slots but only {len(images)} images were given")
        encoded = self.llm_processor(text=[piece], images=images[:n_images], return_tensors="pt")
        ids = encoded.pop("input_ids")[0].tolist()
        for recomputed_per_batch in ("attention_mask", "mm_token_type_ids"):
            encoded.pop(recomputed_per_batch, None)
        vision = {key: value for key, value in encoded.items() if isinstance(value, torch.Tensor)}
        return ids, vision, images[n_images:]

    def _pad_token_types(self, prompts: list[EncodedPrompt], width: int, padding_side: str) -> torch.Tensor:
        # Token types mark image positions for M-RoPE; recompute them from the final ids of each row.
        image_token_id = self.tokenizer.convert_tokens_to_ids(self.llm_processor.image_token)
        rows = []
        for prompt in prompts:
            types = [int(token == image_token_id) for token in prompt.input_ids]
            pad = [0] * (width - len(types))
            rows.append(pad + types if padding_side == "left" else types + pad)
        return torch.tensor(rows, dtype=torch.int32)

    def _answer_tokens(self, messages: list[dict], prompt_text: str, answer: str) -> tuple[list[int], list[int]]:
        full_text = self._render(messages + [{"role": "assistant", "content": answer}], add_generation_prompt=False)
        if not full_text.startswith(prompt_text):
            raise ValueError("the chat template renders the conversation differently once answered; not supported")
        answered = full_text[len(prompt_text) :]
        start = answered.find(answer.strip())
        if start < 0:
            raise ValueError("the chat template did not keep the answer text verbatim")
        answer_text = answered[: start + len(answer.strip())]
        suffix = answered[len(answer_text) :]
        answer_ids = self.tokenizer(answer_text, add_special_tokens=False)["input_ids"]
        suffix_ids = self.tokenizer(suffix, add_special_tokens=False)["input_ids"] if suffix else []
        if not suffix_ids:
            suffix_ids = [self.tokenizer.eos_token_id]
        # The answer and the token that ends the turn are learned; what the template adds after is not.
        labels = answer_ids + [suffix_ids[0]] + [IGNORE_INDEX] * (len(suffix_ids) - 1)
        return answer_ids + suffix_ids, labels

    def _find_end_of_turn(self) -> int:
        messages = self._messages("x", None)
        prompt_text = self._render(messages, add_generation_prompt=True)
        _, labels = self._answer_tokens(messages, prompt_text, "y")
        return [label for label in labels if label != IGNORE_INDEX][-1]
