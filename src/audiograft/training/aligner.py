"""Training the word-timestamp head (`inference.alignment.WordAligner`) on the frozen encoder's cached frames."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from audiograft.evaluation.metrics import TimestampErrors, timestamp_errors
from audiograft.inference.alignment import (
    BLANK,
    WordAligner,
    letter_targets,
)
from audiograft.manifest import Utterance, Word
from audiograft.training.data import LengthBucketSampler
from audiograft.training.encoder_cache import EncoderCache

logger = logging.getLogger(__name__)


def encoder_frames(cache: EncoderCache, utterances: Sequence[Utterance]) -> list[tuple[Utterance, torch.Tensor]]:
    """Each readable utterance with its encoder frames (T, d): the encoder is frozen, so they are computed once."""
    cache.fill(utterances)
    clips = []
    for utterance in utterances:
        try:
            cached = cache.path(utterance.audio).is_file()
        except OSError:  # the audio file itself is missing; fill() has already passed over it
            cached = False
        if cached:
            clips.append((utterance, cache.load(utterance.audio)[0]))
    return clips


@dataclass
class AlignerExample:
    frames: torch.Tensor  # (T, d)
    letters: list[int]  # CTC targets: the transcript's letters
    edge_targets: torch.Tensor | None  # (T, 2) soft word-start / word-end targets, None without word timings


def make_example(
    frames: torch.Tensor, text: str, words: Sequence[Word] | None, frame_seconds: float
) -> AlignerExample:
    """A training example: the transcript's letters and, where word timings exist, soft word-edge targets;
    `frame_seconds` is the duration of one of the encoder's `frames` (`AudioEncoder.frame_seconds`)."""
    letters = letter_targets(text.split())
    edge_targets = None
    if words:
        edge_targets = torch.zeros(frames.shape[0], 2)
        for word in words:
            # Boundaries fall between frames; a boundary a fraction of the way from one to the next is shared
            # between the two, so the targets keep the exact times and not only the nearest frame.
            _soft_mark(edge_targets[:, 0], word.start / frame_seconds)
            _soft_mark(edge_targets[:, 1], word.end / frame_seconds - 1)
    return AlignerExample(frames, letters, edge_targets)


def _soft_mark(target: torch.Tensor, position: float) -> None:
    position = min(max(position, 0.0), target.shape[0] - 1)
    below = math.floor(position)
    fraction = position - below
    target[below] = max(float(target[below]), 1 - fraction)
    if fraction and below + 1 < target.shape[0]:
        target[below + 1] = max(float(target[below + 1]), fraction)


@dataclass
class AlignerBatch:
    frames: torch.Tensor  # (B, T, d), zero-padded
    lengths: torch.Tensor  # (B,)
    letters: torch.Tensor  # (B, L), zero-padded
    letter_lengths: torch.Tensor  # (B,)
    edge_targets: torch.Tensor  # (B, T, 2)
    edge_mask: torch.Tensor  # (B, T): frames of clips that have word timings


def collate(examples: Sequence[AlignerExample]) -> AlignerBatch:
    pad = nn.utils.rnn.pad_sequence
    lengths = torch.tensor([e.frames.shape[0] for e in examples])
    edge_targets = pad([e.edge_targets if e.edge_targets is not None else torch.zeros(len(e.frames), 2)
                        for e in examples], batch_first=True)
    timed = torch.tensor([e.edge_targets is not None for e in examples])
    return AlignerBatch(
        frames=pad([e.frames for e in examples], batch_first=True).float(),
        lengths=lengths,
        letters=pad([torch.tensor(e.letters, dtype=torch.long) for e in examples], batch_first=True),
        letter_lengths=torch.tensor([len(e.letters) for e in examples]),
        edge_targets=edge_targets,
        edge_mask=timed[:, None] & (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]),
    )


def aligner_loss(aligner: WordAligner, batch: AlignerBatch, edge_weight: float = 1.0) -> torch.Tensor:
    """CTC over letters plus, on the frames of clips with word timings, binary cross-entropy on the edges."""
    letter_log_probs, edge_logits = aligner(batch.frames, batch.lengths)
    loss = nn.functional.ctc_loss(
        letter_log_probs.transpose(0, 1), batch.letters, batch.lengths, batch.letter_lengths,
        blank=BLANK, zero_infinity=True,
    )
    if edge_weight and batch.edge_mask.any():
        edge_loss = nn.functional.binary_cross_entropy_with_logits(
            edge_logits[batch.edge_mask], batch.edge_targets[batch.edge_mask]
        )
        loss = loss + edge_weight * edge_loss
    return loss


def train_aligner(
    examples: Sequence[AlignerExample],
    *,
    frame_seconds: float,
    hidden_size: int = 192,
    layers: int = 3,
    epochs: int = 8,
    lr: float = 2e-3,
    batch_frames: int = 6000,
    edge_weight: float = 1.0,
    seed: int = 0,
) -> WordAligner:
    """Train a WordAligner on cached encoder frames: AdamW, one-cycle learning rate, batches of similar length
    holding at most `batch_frames` frames with padding.

    `frame_seconds` is the duration of the examples' encoder frames (`AudioEncoder.frame_seconds`), which the
    aligner records. edge_weight=0, or no example with word timings, trains letters only; the aligner then times words by
    their letters' frames alone.
    """
    torch.manual_seed(seed)
    edge_supervised = edge_weight > 0 and any(e.edge_targets is not None for e in examples)
    aligner = WordAligner(examples[0].frames.shape[1], hidden_size, layers, edge_supervised=edge_supervised,
                          frame_seconds=frame_seconds)
    # The length-bucketed sampler counts seconds; here its unit is frames, and one pool holds every example.
    sampler = LengthBucketSampler([len(e.frames) for e in examples], batch_size=len(examples),
                                  max_batch_seconds=batch_frames, pool_batches=1, seed=seed)
    optimizer = torch.optim.AdamW(aligner.parameters(), lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(sampler))
    aligner.train()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        total = 0.0
        for indices in sampler:
            loss = aligner_loss(aligner, collate([examples[i] for i in indices]), edge_weight if edge_supervised else 0.0)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(aligner.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            total += loss.item()
        logger.info("aligner epoch %d: loss %.4f", epoch + 1, total / len(sampler))
    return aligner.eval()


def timing_errors(aligner: WordAligner, clips: Sequence[tuple[Utterance, torch.Tensor]]) -> TimestampErrors:
    """Boundary errors of the aligner on (utterance with word timings, its frames), timing the reference words."""
    errors = TimestampErrors()
    for utterance, frames in clips:
        reference = [w.word for w in utterance.words]
        hypothesis = [Word(w, s, e) for w, (s, e) in zip(reference, aligner.align(frames, reference))]
        errors += timestamp_errors(utterance.words, hypothesis)
    return errors
