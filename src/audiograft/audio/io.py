"""Audio input: any file libsndfile reads, from disk or uploaded, as 16 kHz mono float32."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile
import soxr

SAMPLE_RATE = 16_000
UPLOAD_NAME = "uploaded audio"

AudioSource = str | Path | bytes | BinaryIO


class AudioError(ValueError):
    """A clip that cannot be used; the message names the file and the cause."""


class AudioTooLong(AudioError):
    """A readable clip past the length the caller accepts (a server answers 413 to it, not 400)."""


def load_audio(
    source: AudioSource,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Mono float32 at `sample_rate`; a clip longer than `max_seconds` is refused like any unusable file.

    `source` is a path, or the bytes or binary file object of an upload; errors call it `name`
    (by default the path, or the file object's own name).
    """
    readable, name = _readable(source, name)
    try:
        samples, source_rate = soundfile.read(readable, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        # error_string leaves out libsndfile's repr of the file object, which means nothing to an uploader.
        raise AudioError(f"{name}: not readable as audio ({getattr(error, 'error_string', error)})") from error
    if samples.shape[0] == 0:
        raise AudioError(f"{name}: contains no samples")
    if not np.isfinite(samples).all():
        # Float formats can carry NaN or infinity; one such clip would spoil every clip batched with it.
        raise AudioError(f"{name}: holds NaN or infinite samples")
    if max_seconds is not None and samples.shape[0] > max_seconds * source_rate:
        raise AudioTooLong(f"{name}: {samples.shape[0] / source_rate:.1f} s is longer than {max_seconds:g} s")
    mono = samples.mean(axis=1)
    if source_rate != sample_rate:
        mono = soxr.resample(mono, source_rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _readable(source: AudioSource, name: str | None) -> tuple[str | BinaryIO, str]:
    """What soundfile reads, and the name errors give it; refuses missing paths and empty uploads by name."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise AudioError(f"{name or path}: no such file")
        if path.is_dir():
            raise AudioError(f"{name or path}: is a directory, not an audio file")
        return str(path), name or str(path)
    file = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    name = name or str(getattr(file, "name", None) or UPLOAD_NAME)
    start = file.tell()
    if not file.read(1):
        raise AudioError(f"{name}: is empty (0 bytes)")
    file.seek(start)
    return file, name
