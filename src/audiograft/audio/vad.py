"""Voice activity, and where long audio is cut into windows the encoder can take.

Speech is found by Silero VAD (the ONNX model shipped inside the `silero-vad` wheel; no network), which gives one
speech probability per 32 ms chunk. `plan_windows` then groups speech regions into windows of at most the encoder's
length. Windows never overlap and are cut only where nobody speaks: between two regions, at the middle of the
longest pause that keeps the window full enough. A single region longer than a window (speech with no pause the
VAD can see) is cut at its least speech-like chunk, in practice the short gap between two words. Every sample of
speech therefore lands in exactly one window: no word is heard twice, and a word is lost only if that forced cut
falls inside it.
"""

from __future__ import annotations

import threading
from itertools import pairwise
from typing import NamedTuple

import numpy as np
import torch

# silero_vad sets torch to one thread when imported, which would run every model on the CPU single-threaded.
_threads = torch.get_num_threads()
from silero_vad import get_speech_timestamps_from_probs, load_silero_vad

torch.set_num_threads(_threads)

from audiograft.audio.io import MIN_SAMPLES, SAMPLE_RATE

# Silero's step at 16 kHz: one probability per 32 ms. The loader owns the number: a clip shorter than one chunk is
# refused there, by name, since the model refuses it here.
CHUNK_SAMPLES = MIN_SAMPLES
# A window is cut in the last part of its span only, so that windows stay long and few.
CUT_SEARCH_START = 0.5


class Span(NamedTuple):
    """Samples [start, end) of one clip."""

    start: int
    end: int

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


class SpeechDetector:
    """Silero VAD. The model keeps state between chunks, so one detector serves one call at a time."""

    def __init__(self) -> None:
        self._model = load_silero_vad(onnx=True)
        self._lock = threading.Lock()

    def probabilities(self, waveform: np.ndarray) -> np.ndarray:
        """Speech probability of each 32 ms chunk of a 16 kHz mono waveform."""
        with self._lock:
            return self._model.audio_forward(torch.from_numpy(waveform), SAMPLE_RATE)[0].numpy()


def speech_regions(
    probabilities: np.ndarray,
    n_samples: int,
    threshold: float = 0.5,
    min_speech_seconds: float = 0.25,
    min_silence_seconds: float = 0.1,
) -> list[Span]:
    """Speech regions, unpadded, from chunk probabilities (Silero's own hysteresis and minimum durations)."""
    regions = get_speech_timestamps_from_probs(
        probabilities.tolist(),
        sampling_rate=SAMPLE_RATE,
        threshold=threshold,
        min_speech_duration_ms=round(min_speech_seconds * 1000),
        min_silence_duration_ms=round(min_silence_seconds * 1000),
        speech_pad_ms=0,
        audio_length_samples=n_samples,
    )
    return [Span(int(region["start"]), int(region["end"])) for region in regions]


def plan_windows(
    regions: list[Span],
    probabilities: np.ndarray,
    n_samples: int,
    max_samples: int,
    pad_samples: int,
    split_pause_samples: int | None = None,
    min_split_samples: int = 0,
) -> list[Span]:
    """Windows of at most `max_samples` covering every region, each padded by up to `pad_samples` of the silence
    around it (never past the middle of a pause, so windows never overlap).

    A pause of at least `split_pause_samples` ends a window once the window spans `min_split_samples` (a model
    trained on single sentences hears about one at a time, but not a lone word); otherwise windows are filled up
    to `max_samples`.
    """
    if 2 * pad_samples >= max_samples:
        raise ValueError(f"padding of {pad_samples} samples each side leaves no room in a {max_samples}-sample window")
    room = max_samples - 2 * pad_samples
    pending = list(regions)
    groups: list[Span] = []
    while pending:
        start = pending[0].start
        fitting = [i for i, region in enumerate(pending) if region.end - start <= room]
        if not fitting:
            cut = _least_speech_point(probabilities, start + int(CUT_SEARCH_START * room), start + room)
            groups.append(Span(start, cut))
            pending[0] = Span(cut, pending[0].end)
            continue
        splits = [
            i for i in fitting[:-1] if split_pause_samples is not None
            and pending[i + 1].start - pending[i].end >= split_pause_samples
            and pending[i].end - start >= min_split_samples
        ]
        last = splits[0] if splits else _window_end(pending, fitting, start + int(CUT_SEARCH_START * room))
        groups.append(Span(start, pending[last].end))
        del pending[: last + 1]
    return _padded(groups, n_samples, pad_samples)


def _least_speech_point(probabilities: np.ndarray, low: int, high: int) -> int:
    """The middle of the least speech-like chunk lying wholly inside samples [low, high]."""
    first, last = -(-low // CHUNK_SAMPLES), high // CHUNK_SAMPLES - 1
    if last < first:
        return high
    chunk = first + int(np.argmin(probabilities[first : last + 1]))
    return chunk * CHUNK_SAMPLES + CHUNK_SAMPLES // 2


def _window_end(pending: list[Span], fitting: list[int], earliest_end: int) -> int:
    """Index of the window's last region: all that is left if it fits, else the one before the longest pause
    among those that leave the window long enough."""
    if fitting[-1] == len(pending) - 1:
        return fitting[-1]
    candidates = [i for i in fitting if pending[i].end >= earliest_end] or fitting
    return max(candidates, key=lambda i: (pending[i + 1].start - pending[i].end, i))


def _padded(groups: list[Span], n_samples: int, pad_samples: int) -> list[Span]:
    bounds = [0, *((a.end + b.start) // 2 for a, b in pairwise(groups)), n_samples]
    return [
        Span(max(group.start - pad_samples, bounds[i]), min(group.end + pad_samples, bounds[i + 1]))
        for i, group in enumerate(groups)
    ]
