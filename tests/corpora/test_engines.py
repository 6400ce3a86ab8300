"""The TTS engines and their helpers."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from audiograft.audio.io import SAMPLE_RATE
from audiograft.corpora.engines import (
    EspeakEngine,
    KokoroEngine,
    align_words,
    available_voices,
)
from audiograft.manifest import Word


def test_align_words_splits_a_merged_phoneme_group_at_the_phoneme_boundary():
    # "in the" spoken as one group "ɪnðə", as espeak-ng phonemises it; Piper times stress marks.
    timed = [("ɪ", 0.0, 0.1), ("n", 0.1, 0.2), ("ð", 0.2, 0.3), ("ə", 0.3, 0.4), (" ", 0.4, 0.45)]
    timed += [("ˈ", 0.45, 0.5), ("ɛnd", 0.5, 0.9)]
    words = align_words(["In", "the", "end."], ["ˈɪn", "ðə", "ˈɛnd"], timed)
    assert words == [Word("In", 0.0, 0.2), Word("the", 0.2, 0.4), Word("end", 0.45, 0.9)]


def test_align_words_refuses_phonemes_that_do_not_match():
    assert align_words(["cat"], ["kæt"], [("d", 0.0, 0.1), ("ɔ", 0.1, 0.2), ("ɡ", 0.2, 0.3)]) is None


requires_kokoro = pytest.mark.skipif(not KokoroEngine.is_installed(), reason="Kokoro packages not installed")


def test_kokoro_style_mixes_are_convex_apart_and_the_same_for_the_same_seed():
    mixes = KokoroEngine.style_mixes(8, seed=1)
    assert mixes == KokoroEngine.style_mixes(8, seed=1)
    assert mixes != KokoroEngine.style_mixes(8, seed=2)
    weights = np.array([[dict(mix).get(style, 0) for style in KokoroEngine.STYLES] for mix in mixes])
    assert (weights >= 0).all() and weights.sum(axis=1) == pytest.approx(np.ones(8), abs=0.005)
    with_tables = np.vstack([np.eye(len(KokoroEngine.STYLES)), weights])
    distances = np.abs(with_tables[:, None] - with_tables[None]).sum(axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() >= KokoroEngine.MIN_MIX_DISTANCE


def test_kokoro_voices_are_unique_and_record_how_they_are_made():
    voices = KokoroEngine().voices()
    assert len({v.id for v in voices}) == len(voices) == (len(KokoroEngine.STYLES) + KokoroEngine.MIXES) * 2
    assert len({v.settings for v in voices}) == len(voices)
    assert sum(v.weight for v in voices) == pytest.approx(KokoroEngine.TOTAL_WEIGHT)
    settings = dict(next(v for v in voices if v.id == "kokoro-mix00-gb").settings)
    assert settings.pop("language") == "en-gb"
    assert tuple(settings.items()) == KokoroEngine.style_mixes(KokoroEngine.MIXES, KokoroEngine.MIX_SEED)[0]


def test_voice_ids_are_unique_across_installed_engines():
    voices = available_voices()
    assert len({v.id for v in voices}) == len(voices)


@requires_kokoro
def test_kokoro_speaks_a_sentence_as_16k_float_audio_with_word_timings():
    engine = KokoroEngine()
    voice = next(v for v in engine.voices() if v.name == "mix03-us")
    audio, words = engine.synthesize("The cat sat down.", voice, rate=1.1, pitch=0.95)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.5 < audio.size / SAMPLE_RATE < 4 and 0.05 < np.abs(audio).max() <= 1
    assert [w.word for w in words] == ["The", "cat", "sat", "down"]
    # Word times are rounded to the millisecond.
    assert all(0 <= w.start < w.end <= audio.size / SAMPLE_RATE + 1e-3 for w in words)
    assert all(a.end <= b.start for a, b in zip(words, words[1:]))


def assert_runs_in_a_fresh_interpreter(script: str) -> None:
    """Run script in a new Python (no library loaded by other tests) with this one's import path; it must pass."""
    environment = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment)
    assert run.returncode == 0, run.stderr[-2000:]


@requires_kokoro
@pytest.mark.skipif(not EspeakEngine.is_installed(), reason="espeak-ng not installed")
def test_espeak_still_speaks_after_kokoro_loaded_its_own_espeak_ng_in_the_same_process():
    # A fresh interpreter: in this one, other tests may have loaded the system espeak-ng first.
    script = (
        "from audiograft.corpora.engines import EspeakEngine, KokoroEngine\n"
        "KokoroEngine().kokoro\n"
        "engine = EspeakEngine()\n"
        "audio, _ = engine.synthesize('The cat sat down.', engine.voices()[0], 1.0, 1.0)\n"
        "assert audio.size > 0\n"
    )
    assert_runs_in_a_fresh_interpreter(script)


@pytest.mark.skipif(importlib.util.find_spec("espeakng_loader") is None, reason="espeakng-loader not installed")
def test_espeak_falls_back_to_the_espeakng_loader_library_and_keeps_its_state_apart_from_kokoros():
    # A fresh interpreter without the system's espeak-ng, as on a machine with pip wheels only. kokoro-onnx's
    # phonemiser loads the wheel's library first and keeps its language there; espeak speaks in another.
    script = (
        "import ctypes, ctypes.util, espeakng_loader\n"
        "from audiograft.corpora.engines import EspeakEngine\n"
        "ctypes.util.find_library = lambda name: None\n"
        "phonemiser = ctypes.CDLL(espeakng_loader.get_library_path())\n"
        "assert phonemiser.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0) > 0\n"
        "assert phonemiser.espeak_SetVoiceByName(b'en-us') == 0\n"
        "phonemiser.espeak_GetCurrentVoice.restype = ctypes.POINTER(ctypes.c_char_p)\n"
        "language = phonemiser.espeak_GetCurrentVoice()[0]\n"
        "engine = EspeakEngine()\n"
        "assert EspeakEngine.is_installed()\n"
        "assert engine.library_location() == (espeakng_loader.get_library_path(), espeakng_loader.get_data_path())\n"
        "voice = next(v for v in engine.voices() if v.name == 'en-gb-scotland+f2')\n"
        "audio, words = engine.synthesize('The cat sat down.', voice, 1.0, 1.0)\n"
        "assert audio.size > 8000 and [w.word for w in words] == ['The', 'cat', 'sat', 'down']\n"
        "assert phonemiser.espeak_GetCurrentVoice()[0] == language, phonemiser.espeak_GetCurrentVoice()[0]\n"
    )
    assert_runs_in_a_fresh_interpreter(script)
