"""Prompts in the LLM's own chat template, with room for audio, and labels for training.

The user turn carries an audio marker where each clip goes. The rendered prompt is cut at the markers,
each piece is tokenized on its own, and each clip gets a run of placeholder positions between them:
the positions are known exactly (no special token has to survive tokenization or be added to the
vocabulary), and the model overwrites them with projected audio frames.

Labels cover the assistant answer and its end-of-turn token only. They are built from positions,
never from token identity, so a tokenizer whose pad token is its EOS still learns to stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch.nn.utils.rnn import pad_sequence

from audiograft.modeling.config import DEFAULT_INSTRUCTION

IGNORE_INDEX = -100
AUDIO_MARKER = "<|audiograft:audio|>"


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


class Prompter:
    """Turns (audio token counts, instruction, optional answer, optional images) into model inputs."""

    def __init__(self, tokenizer: Any, processor: Any = None, system_prompt: str | None = None):
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the LLM tokenizer has no chat template; audiograft prompts through it")
        self.tokenizer = tokenizer
        self.processor = processor
        self.system_prompt = system_prompt
        self.placeholder_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = self.placeholder_id
        self.end_of_turn_id = self._find_end_of_turn()

    @property
    def stop_token_ids(self) -> list[int]:
        return sorted({self.end_of_turn_id, self.tokenizer.eos_token_id} - {None})

    def encode(
        self,
        audio_token_counts: list[int],
        instruction: str = DEFAULT_INSTRUCTION,
        answer: str | None = None,
        images: list[Any] | None = None,
    ) -> EncodedPrompt:
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
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        content: Any = text
        if images:
            content = [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]
        return messages + [{"role": "user", "content": content}]

    def _render(self, messages: list[dict], add_generation_prompt: bool) -> str:
        renderer = self.processor if self.processor is not None else self.tokenizer
        return renderer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _tokenize_piece(self, piece: str, images: list[Any]) -> tuple[list[int], dict[str, torch.Tensor], list[Any]]:
        image_token = getattr(self.processor, "image_token", None)
        n_images = piece.count(image_token) if image_token else 0
        if n_images == 0:
            return self.tokenizer(piece, add_special_tokens=False)["input_ids"], {}, images
        if n_images > len(images):
            raise ValueError(f"the prompt has {n_images} image slots but only {len(images)} images were given")
        encoded = self.processor(text=[piece], images=images[:n_images], return_tensors="pt")
        ids = encoded.pop("input_ids")[0].tolist()
        for recomputed_per_batch in ("attention_mask", "mm_token_type_ids"):
            encoded.pop(recomputed_per_batch, None)
        vision = {key: value for key, value in encoded.items() if isinstance(value, torch.Tensor)}
        return ids, vision, images[n_images:]

    def _pad_token_types(self, prompts: list[EncodedPrompt], width: int, padding_side: str) -> torch.Tensor:
        # Token types mark image positions for M-RoPE; recompute them from the final ids of each row.
        image_token_id = self.tokenizer.convert_tokens_to_ids(self.processor.image_token)
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
