"""Training data: the dataset over a manifest, a length-bucketed sampler, SpecAugment, the collator."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from torch.utils.data import Dataset, Sampler

from audiograft.audio.io import AudioError, load_audio
from audiograft.manifest import ManifestError, Utterance
from audiograft.modeling.processor import GraftProcessor

logger = logging.getLogger(__name__)


@dataclass
class Example:
    """One loaded utterance, or the error that made it unusable (the rest of the batch goes on)."""

    index: int
    text: str
    waveform: np.ndarray | None = None
    error: str | None = None
    seed_key: tuple[int, ...] = ()
    encoded: tuple[torch.Tensor, int] | None = None  # cached encoder frames and log-mel length, instead of audio


def with_existing_audio(utterances: Sequence[Utterance], manifest: str) -> list[Utterance]:
    """The utterances whose audio file exists. Checked once, before training: the missing ones are named in one
    warning and left out, rather than warned about in every epoch; if none exists, ManifestError."""
    exists = [Path(u.audio).is_file() for u in utterances]
    missing = [u for u, present in zip(utterances, exists) if not present]
    if missing and len(missing) == len(utterances):
        raise ManifestError(f"{manifest}: none of its {len(utterances)} audio files exists (the first: "
                            f"{missing[0].audio}); audio paths are relative to the manifest's directory")
    if missing:
        listed = ", ".join(f"line {u.source.rsplit(':', 1)[-1]} ({u.audio})" if u.source else str(u.audio)
                           for u in missing)
        logger.warning("%s: %d of %d audio files do not exist; their utterances are left out: %s",
                       manifest, len(missing), len(utterances), listed)
    return [u for u, present in zip(utterances, exists) if present]


class SpeechDataset(Dataset):
    """Utterances from a manifest, loaded on access; `augment` runs on the waveform (training only).

    With an `encoder_cache` (an `EncoderCache`), examples carry the cached encoder frames instead of audio.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        augment: Any = None,
        seed: int = 0,
        max_seconds: float | None = None,
        encoder_cache: Any = None,
    ):
        if encoder_cache is not None and augment is not None:
            raise ValueError("cached encoder output cannot be augmented: use augment or the encoder cache, not both")
        self.encoder_cache = encoder_cache
        self.utterances = list(utterances)
        self.max_seconds = max_seconds
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def durations(self) -> list[float]:
        return [u.duration for u in self.utterances]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> Example:
        utterance = self.utterances[index]
        # Randomness is keyed by (seed, epoch, item), so a resumed run augments as an uninterrupted one.
        seed_key = (self.seed, self.epoch, index)
        if self.encoder_cache is not None:
            try:
                return Example(index, utterance.text, seed_key=seed_key, encoded=self.encoder_cache.load(utterance.audio))
            except (OSError, SafetensorError) as error:
                # The cache was filled before training: a miss is a file that is unreadable or changed since.
                return Example(index, utterance.text,
                               error=self._named(utterance, f"{utterance.audio}: not in the encoder cache ({error})"))
        try:
            waveform = load_audio(utterance.audio, max_seconds=self.max_seconds)
        except AudioError as error:
            return Example(index, utterance.text, error=self._named(utterance, str(error)), seed_key=seed_key)
        if self.augment is not None:
            waveform = self.augment(waveform, np.random.default_rng(seed_key))
        return Example(index, utterance.text, waveform, seed_key=seed_key)

    @staticmethod
    def _named(utterance: Utterance, error: str) -> str:
        """The error, after the manifest line it came from where that is known."""
        return f"{utterance.source}: {error}" if utterance.source else error


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar duration (little padding), in an order fixed by (seed, epoch).

    Indices are shuffled, cut into pools of `pool_batches` batches, each pool sorted by duration and
    cut into batches; batches are then shuffled. A batch holds at most `batch_size` utterances and,
    when `max_batch_seconds` is set, at most that much padded audio (longest clip x count).
    `skip` leaves out the epoch's first batches: a resumed run starts where it stopped.
    """

    def __init__(
        self,
        durations: Sequence[float],
        batch_size: int,
        max_batch_seconds: float | None = None,
        pool_batches: int = 50,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.durations = list(durations)
        self.batch_size = batch_size
        self.max_batch_seconds = max_batch_seconds
        self.pool_batches = pool_batches
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        order = list(range(len(self.durations)))
        rng = random.Random(f"{self.seed}:{self.epoch}")
        if self.shuffle:
            rng.shuffle(order)
        pool_size = self.batch_size * self.pool_batches
        batches = []
        for start in range(0, len(order), pool_size):
            pool = sorted(order[start : start + pool_size], key=lambda i: self.durations[i])
            batches += self._cut(pool)
        if self.drop_last and batches and len(batches[-1]) < self.batch_size and self.max_batch_seconds is None:
            batches.pop()
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def _cut(self, indices: list[int]) -> list[list[int]]:
        batches, current = [], []
        for index in indices:
            longest = max([self.durations[i] for i in current] + [self.durations[index]])
            too_long = self.max_batch_seconds is not None and longest * (len(current) + 1) > self.max_batch_seconds
            if current and (len(current) == self.batch_size or too_long):
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches()[self.skip :])

    def __len__(self) -> int:
        return max(0, len(self.batches()) - self.skip)


@dataclass
class SpecAugment:
    """Frequency and time masks on log-mel features (Park et al., 2019), inside each clip's valid frames.

    Hand-written because torchaudio, which has these masks, has no CPU build on our machines.
    """

    freq_masks: int = 2
    freq_width: int = 10
    time_masks: int = 2
    time_width_fraction: float = 0.05

    def __call__(self, features: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        def draw(high: int) -> int:
            return int(torch.randint(high, (1,), generator=generator))

        features = features.clone()
        mels = features.shape[1]
        for row, length in enumerate(lengths.tolist()):
            fill = features[row, :, :length].mean()
            for _ in range(self.freq_masks):
                width = draw(self.freq_width + 1)
                start = draw(max(1, mels - width))
                features[row, start : start + width, :length] = fill
            max_time = max(1, int(self.time_width_fraction * length))
            for _ in range(self.time_masks):
                width = draw(max_time + 1)
                start = draw(max(1, length - width))
                features[row, :, start : start + width] = fill
        return features


class SpeechCollator:
    """Examples -> a training batch (log-mel features, token ids, audio positions, labels).

    It holds the graft's processor, never the model: each data-loader worker gets a copy of the collator.
    Unusable examples are logged and left out; a batch with none left is returned as None.
    """

    def __init__(
        self, processor: GraftProcessor, instruction: str | None = None, spec_augment: SpecAugment | None = None
    ):
        self.processor = processor
        self.instruction = instruction
        self.spec_augment = spec_augment

    def __call__(self, examples: list[Example]) -> dict[str, torch.Tensor] | None:
        usable = []
        for example in examples:
            if example.error is not None:
                logger.warning("skipping %s", example.error)
            else:
                usable.append(example)
        if not usable:
            return None
        if usable[0].encoded is not None:
            return self.processor.prepare_encoded([e.encoded for e in usable], self.instruction,
                                                  [e.text for e in usable])
        batch = self.processor([e.waveform for e in usable], self.instruction, answers=[e.text for e in usable])
        if self.spec_augment is not None:
            seed = np.random.default_rng([k for e in usable for k in e.seed_key]).integers(2**62)
            generator = torch.Generator().manual_seed(int(seed))
            batch["input_features"] = self.spec_augment(batch["input_features"], batch["feature_lengths"], generator)
        return batch

