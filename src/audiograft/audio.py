"""Audio input: any file libsndfile reads, as 16 kHz mono float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import soxr

SAMPLE_RATE = 16_000


class AudioError(ValueError):
    """A clip that cannot be used; the message names the file and the cause."""


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Mono float32 at `sample_rate`; a clip longer than `max_seconds` is refused like any unusable file."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        samples, source_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(f"{path}: not readable as audio ({error})") from error
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: contains no samples")
    if max_seconds is not None and samples.shape[0] > max_seconds * source_rate:
        raise AudioError(f"{path}: {samples.shape[0] / source_rate:.1f} s is longer than {max_seconds:g} s")
    mono = samples.mean(axis=1)
    if source_rate != sample_rate:
        mono = soxr.resample(mono, source_rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)
