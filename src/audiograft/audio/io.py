"""Audio input: any file libsndfile reads, from disk or uploaded, as 16 kHz mono float32.

`checked_waveform` is the one check of a waveform every part of audiograft takes (loading, the Transcriber, the
encoder's features); `run_on_loaded` is the one way to run work on a group of files where each bad file becomes its
own AudioError and the rest go on.
"""

from __future__ import annotations

import io
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import soundfile
import soxr

from audiograft.files import atomic_path

SAMPLE_RATE = 16_000
# Silero VAD's step at 16 kHz (audiograft.audio.vad takes its chunk from here): it refuses less than one chunk, so
# this is the shortest clip anything in audiograft takes. 32 ms holds no speech anyway.
MIN_SAMPLES = 512
# A declared rate below this is a damaged header, not a recording: telephone speech, the poorest there is, is 8 kHz.
# Trusting it would also upsample a small file into gigabytes (1 Hz: each sample becomes 16,000).
MIN_SOURCE_RATE = 4_000
UPLOAD_NAME = "uploaded audio"

AudioSource = str | Path | bytes | BinaryIO
Result = TypeVar("Result")


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
    """Mono float32 at `sample_rate`, passed by `checked_waveform`; a clip longer than `max_seconds` is refused like
    any unusable file.

    `source` is a path, or the bytes or binary file object of an upload; errors call it `name`
    (by default the path, or the file object's own name).
    """
    readable, name = _readable(source, name)
    try:
        samples, source_rate = soundfile.read(readable, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(_unreadable(readable, name, error)) from error
    if samples.shape[0] == 0:
        raise AudioError(f"{name}: contains no samples")
    if source_rate < MIN_SOURCE_RATE:
        raise AudioError(f"{name}: declares a sample rate of {source_rate} Hz, below the {MIN_SOURCE_RATE} Hz of any "
                         "speech recording; the header is probably damaged: export or download the file again")
    seconds = samples.shape[0] / source_rate
    # Length is refused before resampling: a long file costs no work, and a short one is named with its declared rate.
    if max_seconds is not None and seconds > max_seconds:
        raise AudioTooLong(_too_long(name, seconds, max_seconds))
    if seconds < MIN_SAMPLES / SAMPLE_RATE:
        declared = f" ({samples.shape[0]} samples at its declared {source_rate} Hz)" if source_rate != sample_rate else ""
        raise AudioError(_too_short(name, seconds) + declared)
    mono = samples.mean(axis=1)
    if source_rate != sample_rate:
        mono = soxr.resample(mono, source_rate, sample_rate, quality="HQ")
    return checked_waveform(mono, name, sample_rate=sample_rate)


def write_audio(path: str | Path, waveform: np.ndarray) -> Path:
    """`waveform` (16 kHz mono) as a 16-bit FLAC file at `path`, written atomically: the one way corpora write clips."""
    with atomic_path(path) as temporary:
        soundfile.write(str(temporary), np.asarray(waveform, dtype=np.float32), SAMPLE_RATE, format="FLAC",
                        subtype="PCM_16")
    return Path(path)


# libsndfile's Opus compression_level for 16 kHz speech, measured on 40 corpus clips: 0.9 30, 0.95 19, 0.97 14.5,
# 0.98 12.3, 1.0 7.8 kbit/s. At 1.0 the encoder drops to narrowband (energy above 4 kHz 0.03% of the total against
# 0.85% at 0.98 and 1.1% in the source): 0.98 is the smallest setting that keeps speech wideband.
WIDEBAND_OPUS_COMPRESSION = 0.98


def write_opus(path: str | Path, waveform: np.ndarray, compression_level: float | None = None) -> Path:
    """`waveform` (16 kHz mono) as an Ogg/Opus file at `path`, written atomically: clips that must travel small
    (12 kbit/s at WIDEBAND_OPUS_COMPRESSION; libsndfile's default when None)."""
    with atomic_path(path) as temporary:
        soundfile.write(str(temporary), np.asarray(waveform, dtype=np.float32), SAMPLE_RATE, format="OGG",
                        subtype="OPUS", compression_level=compression_level)
    return Path(path)


# How corpora store clips, by name: lossless FLAC, or wideband Ogg/Opus at about a fifth of the size (12 kbit/s),
# for a corpus that must travel; codec artefacts are one of training's augmentations anyway.
CLIP_FORMATS = {"flac": ".flac", "opus": ".ogg"}


def write_clip(path: str | Path, waveform: np.ndarray, clip_format: str) -> Path:
    """`waveform` at `path` in one of CLIP_FORMATS (the path's suffix is the caller's): FLAC by write_audio, Opus by
    write_opus at WIDEBAND_OPUS_COMPRESSION."""
    if clip_format == "flac":
        return write_audio(path, waveform)
    if clip_format == "opus":
        return write_opus(path, waveform, WIDEBAND_OPUS_COMPRESSION)
    raise ValueError(f"clip format must be one of {sorted(CLIP_FORMATS)}, got {clip_format!r}")


def checked_waveform(
    waveform: np.ndarray, name: str, max_seconds: float | None = None, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """`waveform` as contiguous float32 if it is a clip audiograft can take: mono (1-D) float samples, all finite, at
    least MIN_SAMPLES (at 16 kHz) and at most `max_seconds` long; else an AudioError naming `name` and the cause."""
    waveform = np.asarray(waveform)
    if waveform.ndim != 1 or waveform.size == 0:
        raise AudioError(f"{name}: expected a non-empty 1-D waveform (16 kHz mono), got shape {waveform.shape}")
    if not np.issubdtype(waveform.dtype, np.floating):
        raise AudioError(f"{name}: expected float samples in [-1, 1], got {waveform.dtype}")
    if not np.isfinite(waveform).all():
        # One such clip would spoil every clip batched with it.
        raise AudioError(f"{name}: holds NaN or infinite samples")
    if waveform.size < MIN_SAMPLES * sample_rate / SAMPLE_RATE:
        raise AudioError(_too_short(name, waveform.size / sample_rate))
    if max_seconds is not None and waveform.size > max_seconds * sample_rate:
        raise AudioTooLong(_too_long(name, waveform.size / sample_rate, max_seconds))
    return np.ascontiguousarray(waveform, dtype=np.float32)


def run_on_loaded(
    sources: Sequence[AudioSource],
    run: Callable[[list[np.ndarray]], Sequence[Result]],
    max_seconds: float | None = None,
) -> list[Result | AudioError]:
    """Load every source, run `run` once on the waveforms of those that load, and give each source its result or
    its own AudioError, in order: a bad file is named and never costs the others their work."""
    loaded: list[np.ndarray | AudioError] = []
    for source in sources:
        try:
            loaded.append(load_audio(source, max_seconds=max_seconds))
        except AudioError as error:
            loaded.append(error)
    readable = [index for index, result in enumerate(loaded) if isinstance(result, np.ndarray)]
    results: list[Result | AudioError] = list(loaded)
    if readable:
        for index, result in zip(readable, run([loaded[index] for index in readable]), strict=True):
            results[index] = result
    return results


def _too_short(name: str, seconds: float) -> str:
    minimum = MIN_SAMPLES / SAMPLE_RATE
    return f"{name}: {round(seconds * 1000, 1):g} ms of audio is too short: at least {minimum * 1000:g} ms is needed"


def _too_long(name: str, seconds: float, max_seconds: float) -> str:
    return f"{name}: {seconds:.1f} s is longer than {max_seconds:g} s"


def _readable(source: AudioSource, name: str | None) -> tuple[str | BinaryIO, str]:
    """What soundfile reads, and the name errors give it; refuses missing paths and empty files by name."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or str(path)
        if not path.exists():
            raise AudioError(f"{name}: no such file")
        if path.is_dir():
            raise AudioError(f"{name}: is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioError(f"{name}: is empty (0 bytes)")
        return str(path), name
    file = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    name = name or str(getattr(file, "name", None) or UPLOAD_NAME)
    start = file.tell()
    if not file.read(1):
        raise AudioError(f"{name}: is empty (0 bytes)")
    file.seek(start)
    return file, name


def _unreadable(readable: str | BinaryIO, name: str, error: Exception) -> str:
    """What is wrong with a file libsndfile refused, and what to do about it."""
    # error_string leaves out libsndfile's repr of the file object, which means nothing to an uploader.
    cause = getattr(error, "error_string", error)
    convert = f"ffmpeg -i {shlex.quote(name)} {shlex.quote(str(Path(name).with_suffix('.flac')))}"
    if _is_m4a_or_aac(readable):
        return f"{name}: M4A/AAC audio, which libsndfile cannot decode; convert it first, e.g. {convert}"
    if "Format not recognised" in str(cause):
        formats = ", ".join(sorted(soundfile.available_formats()))
        return f"{name}: not readable as audio ({cause}): not a format libsndfile reads ({formats}); convert it, e.g. {convert}"
    return f"{name}: not readable as audio ({cause}): the file looks damaged or cut short; export or download it again"


def _is_m4a_or_aac(readable: str | BinaryIO) -> bool:
    """Whether the file starts as an MP4 container (M4A) or an ADTS AAC stream does."""
    if isinstance(readable, str):
        with open(readable, "rb") as file:
            head = file.read(8)
    else:
        readable.seek(0)
        head = readable.read(8)
    # MP4: a box size, then "ftyp". ADTS: 12 sync bits, then layer bits 00 (MPEG audio, which libsndfile reads, has 01-11).
    return head[4:8] == b"ftyp" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0)
