"""Waveform augmentation applied on the fly at training time (never baked into a corpus).

Each transform takes a 16 kHz float32 waveform and a numpy Generator, so a run seeded the same way
sees the same augmentation. Noise and room responses are synthesised: no corpus of recordings ships
here, and coloured noise plus exponentially decaying reverberation tails cover the common cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from audiograft.audio.io import SAMPLE_RATE


def change_speed(waveform: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (pitch moves with it, as in Kaldi's speed perturbation)."""
    return soxr.resample(waveform, SAMPLE_RATE * factor, SAMPLE_RATE, quality="HQ").astype(np.float32)


def coloured_noise(size: int, rng: np.random.Generator, colour: float = 0.0) -> np.ndarray:
    """Noise with a 1/f**colour power spectrum (0 white, 1 pink, 2 brown), scaled to unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(size))
    frequencies = np.maximum(np.fft.rfftfreq(size, 1 / SAMPLE_RATE), 1.0)
    noise = np.fft.irfft(spectrum / frequencies ** (colour / 2), n=size)
    return noise / np.sqrt(np.mean(noise**2) + 1e-24)


def add_noise(waveform: np.ndarray, snr_db: float, rng: np.random.Generator, colour: float = 0.0) -> np.ndarray:
    """Noise with a 1/f**colour spectrum (0 white, 1 pink, 2 brown) at `snr_db` below the signal."""
    signal_power = np.mean(waveform**2) + 1e-12
    noise = coloured_noise(waveform.size, rng, colour) * np.sqrt(signal_power / 10 ** (snr_db / 10))
    return (waveform + noise).astype(np.float32)


def room_impulse_response(rt60: float, rng: np.random.Generator, direct_delay: float = 0.002) -> np.ndarray:
    """A diffuse reverberation tail decaying 60 dB in `rt60` seconds after a direct path."""
    length = int(rt60 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    response = rng.standard_normal(length) * np.exp(-6.908 * t / rt60) * 0.3
    response[: int(direct_delay * SAMPLE_RATE)] = 0.0
    response[0] = 1.0
    return response / np.sqrt(np.sum(response**2))


def reverberate(waveform: np.ndarray, response: np.ndarray) -> np.ndarray:
    size = waveform.size + response.size - 1
    wet = np.fft.irfft(np.fft.rfft(waveform, size) * np.fft.rfft(response, size), n=size)[: waveform.size]
    peak = np.max(np.abs(wet)) + 1e-12
    return (wet * min(1.0, np.max(np.abs(waveform)) / peak)).astype(np.float32)


def telephone_band(waveform: np.ndarray, low_hz: float = 300.0, high_hz: float = 3400.0) -> np.ndarray:
    """Narrow-band telephone sound: through 8 kHz and a 300-3400 Hz band-pass."""
    narrow = soxr.resample(waveform, SAMPLE_RATE, 8000, quality="HQ")
    spectrum = np.fft.rfft(narrow)
    frequencies = np.fft.rfftfreq(narrow.size, 1 / 8000)
    spectrum[(frequencies < low_hz) | (frequencies > high_hz)] = 0
    band = np.fft.irfft(spectrum, n=narrow.size)
    return soxr.resample(band, 8000, SAMPLE_RATE, quality="HQ")[: waveform.size].astype(np.float32)


@dataclass
class Augmentation:
    """Each transform fires with its probability, in a fixed order: speed, reverberation, telephone, noise.

    By default only the speed changes. Trained on synthetic voices, speed change alone helped real English speech;
    telephone band and noise alone did not, reverberation (and SpecAugment, which training.data applies apart) cost
    it, and all of them together cost it most (benchmarks/RESULTS.md, ninth lease). The others stay here, off, for
    data and targets where they measure better.
    """

    speed_probability: float = 0.5
    speed_range: tuple[float, float] = (0.9, 1.1)
    reverb_probability: float = 0.0
    rt60_range: tuple[float, float] = (0.15, 0.8)
    telephone_probability: float = 0.0
    noise_probability: float = 0.0
    snr_range_db: tuple[float, float] = (5.0, 30.0)
    max_seconds: float | None = None  # the encoder's window: slowing down never pushes a clip past it

    def __call__(self, waveform: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() < self.speed_probability:
            factor = rng.uniform(*self.speed_range)
            if self.max_seconds is not None:
                factor = max(factor, waveform.size / (self.max_seconds * SAMPLE_RATE))
            waveform = change_speed(waveform, factor)
        if rng.random() < self.reverb_probability:
            waveform = reverberate(waveform, room_impulse_response(rng.uniform(*self.rt60_range), rng))
        if rng.random() < self.telephone_probability:
            waveform = telephone_band(waveform)
        if rng.random() < self.noise_probability:
            waveform = add_noise(waveform, rng.uniform(*self.snr_range_db), rng, colour=rng.choice([0.0, 1.0, 2.0]))
        return waveform
