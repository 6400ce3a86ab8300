import io

import numpy as np
import pytest
import soundfile

from audiograft.audio.io import (
    SAMPLE_RATE,
    UPLOAD_NAME,
    AudioError,
    AudioTooLong,
    load_audio,
)


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


def test_a_clip_past_max_seconds_is_audio_too_long(tmp_path):
    soundfile.write(tmp_path / "long.wav", np.zeros(16000 * 3, dtype=np.float32), 16000)
    with pytest.raises(AudioTooLong):
        load_audio(tmp_path / "long.wav", max_seconds=2)
    with pytest.raises(AudioTooLong, match="upload.wav: 3.0 s"):
        load_audio((tmp_path / "long.wav").read_bytes(), max_seconds=2, name="upload.wav")


def test_reads_uploads_as_bytes_and_as_binary_file_objects(tmp_path):
    t = np.arange(22050) / 22050
    soundfile.write(tmp_path / "clip.flac", 0.4 * np.sin(2 * np.pi * 300 * t), 22050)
    from_path = load_audio(tmp_path / "clip.flac")
    np.testing.assert_array_equal(load_audio((tmp_path / "clip.flac").read_bytes()), from_path)
    with open(tmp_path / "clip.flac", "rb") as file:
        np.testing.assert_array_equal(load_audio(file), from_path)


@pytest.mark.parametrize(
    "upload, message",
    [(b"", "recording.mp3: is empty"), (io.BytesIO(b""), "recording.mp3: is empty"),
     (b"not audio at all", r"recording.mp3: not readable as audio \(Format not recognised")],
)
def test_bad_uploads_are_named_by_the_uploaded_filename(upload, message):
    with pytest.raises(AudioError, match=message) as raised:
        load_audio(upload, name="recording.mp3")
    assert "object at 0x" not in str(raised.value)


def test_an_unnamed_upload_is_called_by_the_file_objects_name_or_uploaded_audio(tmp_path):
    (tmp_path / "junk.ogg").write_bytes(b"junk")
    with open(tmp_path / "junk.ogg", "rb") as file, pytest.raises(AudioError, match="junk.ogg: not readable"):
        load_audio(file)
    with pytest.raises(AudioError, match=f"{UPLOAD_NAME}: not readable"):
        load_audio(b"junk")


def test_nan_or_infinite_samples_are_refused_by_name(tmp_path):
    samples = np.zeros(1600, dtype=np.float32)
    samples[10] = np.nan
    soundfile.write(tmp_path / "nan.wav", samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: holds NaN or infinite samples"):
        load_audio(tmp_path / "nan.wav")
