import numpy as np
import pytest
import soundfile

from audiograft.audio import SAMPLE_RATE, AudioError, load_audio


def test_resamples_and_downmixes(tmp_path):
    seconds = 0.5
    t = np.arange(int(44100 * seconds)) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(tmp_path / "stereo.wav", np.stack([tone, tone], axis=1), 44100, subtype="PCM_16")
    audio = load_audio(tmp_path / "stereo.wav")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - SAMPLE_RATE * seconds) <= 1
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / audio.size - 440) < 5


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.write_bytes(b"not audio at all"), p)[1], "not readable as audio"),
        (lambda p: (soundfile.write(p, np.zeros(0), 16000), p)[1], "contains no samples"),
        (lambda p: (p.mkdir(), p)[1], "is a directory"),
    ],
)
def test_bad_input_names_the_file_and_the_cause(tmp_path, make, message):
    path = make(tmp_path / "clip.wav")
    with pytest.raises(AudioError, match=message) as raised:
        load_audio(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    "suffix, fmt, subtype",
    [("flac", "FLAC", "PCM_24"), ("ogg", "OGG", "VORBIS"), ("opus", "OGG", "OPUS"), ("mp3", "MP3", "MPEG_LAYER_III"),
     ("wav", "WAV", "FLOAT"), ("wav", "WAV", "PCM_U8")],
)
def test_reads_the_formats_libsndfile_offers(tmp_path, suffix, fmt, subtype):
    if subtype not in soundfile.available_subtypes(fmt):
        pytest.skip(f"this libsndfile cannot write {fmt}/{subtype}")
    t = np.arange(48000) / 48000
    path = tmp_path / f"clip.{suffix}"
    soundfile.write(path, 0.4 * np.sin(2 * np.pi * 300 * t), 48000, format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert abs(audio.size - SAMPLE_RATE) < 0.05 * SAMPLE_RATE  # codecs may pad a few frames
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / audio.size - 300) < 5


def test_a_clip_past_max_seconds_is_refused_with_its_length(tmp_path):
    soundfile.write(tmp_path / "long.wav", np.zeros(8000 * 31, dtype=np.float32), 8000)
    with pytest.raises(AudioError, match=r"long.wav: 31.0 s is longer than 30 s"):
        load_audio(tmp_path / "long.wav", max_seconds=30)
    assert load_audio(tmp_path / "long.wav").size == 31 * SAMPLE_RATE
