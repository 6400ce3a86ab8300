import numpy as np
import pytest

from audiograft.audio.augment import (
    Augmentation,
    add_noise,
    change_speed,
    coloured_noise,
    reverberate,
    room_impulse_response,
    telephone_band,
)


def tone(hz=440.0, seconds=1.0):
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def peak_hz(waveform):
    return np.argmax(np.abs(np.fft.rfft(waveform))) * 16000 / waveform.size


def test_speed_changes_length_and_pitch():
    faster = change_speed(tone(), 1.1)
    assert abs(faster.size - 16000 / 1.1) <= 2
    assert peak_hz(faster) == pytest.approx(440 * 1.1, abs=3)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_noise_lands_at_the_requested_snr(snr_db):
    clean = tone()
    noise = add_noise(clean, snr_db, np.random.default_rng(0), colour=1.0) - clean
    assert 10 * np.log10(np.mean(clean**2) / np.mean(noise**2)) == pytest.approx(snr_db, abs=0.01)


def test_reverb_spreads_energy_in_time():
    rng = np.random.default_rng(0)
    click = np.zeros(16000, dtype=np.float32)
    click[100] = 1.0
    wet = reverberate(click, room_impulse_response(0.5, rng))
    assert wet.size == click.size and np.abs(wet[2000:6000]).max() > 1e-3


def test_telephone_band_removes_low_and_high_frequencies():
    mixture = tone(100) + tone(1000) + tone(6000)
    spectrum = np.abs(np.fft.rfft(telephone_band(mixture)))
    assert spectrum[1000] > 10 * spectrum[100] and spectrum[1000] > 10 * spectrum[6000]


def test_augmentation_is_reproducible_from_the_generator():
    augmentation = Augmentation(speed_probability=1, reverb_probability=1, telephone_probability=1, noise_probability=1)
    first = augmentation(tone(), np.random.default_rng(5))
    assert np.array_equal(first, augmentation(tone(), np.random.default_rng(5)))
    assert not np.array_equal(first, augmentation(tone(), np.random.default_rng(6)))


def test_coloured_noise_has_unit_rms_and_more_low_end_the_redder_it_is():
    def low_share(noise):
        power = np.abs(np.fft.rfft(noise)) ** 2
        return power[np.fft.rfftfreq(noise.size, 1 / 16000) < 200].sum() / power.sum()

    white, pink, brown = (coloured_noise(16000, np.random.default_rng(0), colour) for colour in (0.0, 1.0, 2.0))
    assert all(abs(np.sqrt(np.mean(n**2)) - 1) < 1e-6 for n in (white, pink, brown))
    assert low_share(white) < 0.05 < low_share(pink) < low_share(brown)


def test_slowing_down_never_pushes_a_clip_past_the_encoder_window():
    long_clip = np.random.default_rng(0).standard_normal(int(29.5 * 16000)).astype(np.float32)
    slow = Augmentation(speed_probability=1.0, speed_range=(0.9, 0.9), reverb_probability=0, telephone_probability=0,
                        noise_probability=0, max_seconds=30.0)
    assert long_clip.size < slow(long_clip, np.random.default_rng(1)).size <= 30 * 16000
    unbounded = Augmentation(speed_probability=1.0, speed_range=(0.9, 0.9), reverb_probability=0,
                             telephone_probability=0, noise_probability=0)
    assert unbounded(long_clip, np.random.default_rng(1)).size > 30 * 16000


def test_the_default_augmentation_only_changes_the_speed():
    # The ninth lease measured each kind alone: only speed helped real English, so it is the only one on by default.
    augmentation = Augmentation()
    silence, clip = np.zeros(16000, dtype=np.float32), tone()
    outputs = [augmentation(clip, np.random.default_rng(seed)) for seed in range(20)]
    assert all(not augmentation(silence, np.random.default_rng(seed)).any() for seed in range(20))
    assert {output.size for output in outputs} - {clip.size}, "speed never changed in 20 draws"
    assert all(np.array_equal(output, clip) for output in outputs if output.size == clip.size)
