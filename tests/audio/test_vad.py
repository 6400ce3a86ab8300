"""Voice activity (Silero) and window planning, on synthetic probabilities and on real speech."""

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from audiograft.audio.io import SAMPLE_RATE, load_audio
from audiograft.audio.vad import (
    CHUNK_SAMPLES,
    Span,
    SpeechDetector,
    plan_windows,
    speech_regions,
)

JFK = Path(__file__).parents[2] / "examples" / "jfk.flac"
SECOND = SAMPLE_RATE


def seconds(*pairs):
    return [Span(int(start * SECOND), int(end * SECOND)) for start, end in pairs]


def covered(windows, regions):
    """Every region sample in exactly one window."""
    counts = np.zeros(max(r.end for r in regions), dtype=int)
    for window in windows:
        counts[window.start : window.end] += 1
    return all((counts[r.start : r.end] == 1).all() for r in regions)


def test_windows_group_regions_and_cut_at_the_longest_late_pause():
    # Pauses of 0.5 s after 4 s, 2.0 s after 7 s and 0.3 s after 9.5 s; a 10 s window fits up to 9.5 s.
    regions = seconds((0, 4), (4.5, 7), (9, 9.5), (9.8, 12), (12.5, 14))
    probabilities = np.ones(14 * SECOND // CHUNK_SAMPLES + 1)
    windows = plan_windows(regions, probabilities, 14 * SECOND, max_samples=10 * SECOND, pad_samples=0)
    assert windows == seconds((0, 7), (9, 14))
    assert covered(windows, regions)


def test_a_long_enough_pause_ends_a_window_once_the_window_is_long_enough():
    # Pauses of 0.5 s after 1 s (window still too short), 0.2 s after 3 s (too short a pause), 0.8 s after 5 s.
    regions = seconds((0, 1), (1.5, 3), (3.2, 5), (5.8, 7))
    windows = plan_windows(regions, np.ones(300), 7 * SECOND, max_samples=30 * SECOND, pad_samples=0,
                           split_pause_samples=int(0.4 * SECOND), min_split_samples=int(1.5 * SECOND))
    assert windows == seconds((0, 5), (5.8, 7))
    assert plan_windows(regions, np.ones(300), 7 * SECOND, 30 * SECOND, 0) == seconds((0, 7))


def test_windows_are_padded_into_silence_but_never_past_the_middle_of_a_pause():
    regions = seconds((1, 3), (3.2, 4), (20, 22))
    windows = plan_windows(regions, np.ones(800), 25 * SECOND, max_samples=5 * SECOND, pad_samples=SECOND // 2)
    assert windows == seconds((0.5, 4.5), (19.5, 22.5))
    assert all(w.end - w.start <= 5 * SECOND for w in windows)


def test_speech_longer_than_a_window_is_cut_at_its_least_speech_like_chunk():
    regions = seconds((0, 25))
    probabilities = np.full(25 * SECOND // CHUNK_SAMPLES + 1, 0.9)
    dip = int(7.5 * SECOND) // CHUNK_SAMPLES
    probabilities[dip] = 0.2
    windows = plan_windows(regions, probabilities, 25 * SECOND, max_samples=10 * SECOND, pad_samples=0)
    assert windows[0] == Span(0, dip * CHUNK_SAMPLES + CHUNK_SAMPLES // 2)
    assert all(a.end == b.start for a, b in pairwise(windows))
    assert all(w.end - w.start <= 10 * SECOND for w in windows)
    assert covered(windows, regions)


def test_padding_that_leaves_no_room_is_refused():
    with pytest.raises(ValueError, match="no room"):
        plan_windows(seconds((0, 1)), np.ones(40), SECOND, max_samples=SECOND, pad_samples=SECOND // 2)


def test_speech_regions_follow_probabilities_and_drop_short_bursts():
    chunk = CHUNK_SAMPLES / SAMPLE_RATE
    probabilities = np.array([0.0] * 10 + [0.9] * 30 + [0.0] * 20 + [0.9] * 3 + [0.0] * 10)
    regions = speech_regions(probabilities, probabilities.size * CHUNK_SAMPLES, min_speech_seconds=0.25)
    assert len(regions) == 1
    assert regions[0].start == 10 * CHUNK_SAMPLES
    assert abs(regions[0].end / SAMPLE_RATE - 40 * chunk) < 0.1


def test_silero_finds_speech_in_real_speech_and_none_in_silence_or_noise():
    detector = SpeechDetector()
    speech = load_audio(JFK)
    regions = speech_regions(detector.probabilities(speech), speech.size)
    assert regions and regions[0].start < 0.5 * SECOND and regions[-1].end > 10 * SECOND
    noise = 0.1 * np.random.default_rng(0).standard_normal(5 * SECOND).astype(np.float32)
    for quiet in (np.zeros(5 * SECOND, dtype=np.float32), noise):
        assert speech_regions(detector.probabilities(quiet), quiet.size) == []


def test_importing_the_vad_keeps_the_torch_thread_count():
    # silero_vad sets torch's intra-op threads to 1 when imported; that must not reach the rest of the process.
    # 3 threads: neither silero's 1 nor this 2-core machine's default, so a fix that resets to either fails too.
    import subprocess
    import sys

    code = "import torch; torch.set_num_threads(3); import audiograft.audio.vad; print(torch.get_num_threads())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "3"
