import io

import numpy as np
import pytest
import soundfile
from conftest import make_clips

from audiograft.audio.io import (
    CLIP_FORMATS,
    MIN_SAMPLES,
    SAMPLE_RATE,
    UPLOAD_NAME,
    AudioError,
    AudioTooLong,
    checked_waveform,
    load_audio,
    run_on_loaded,
    write_audio,
    write_clip,
    write_opus,
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


def wav_declaring_rate(samples: int, declared_rate: int) -> bytes:
    """A 16-bit mono WAV whose header claims `declared_rate` (the header's rate and byte-rate fields rewritten)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.full(samples, 0.1, dtype=np.float32), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    data[24:28] = (declared_rate % 2**32).to_bytes(4, "little")
    data[28:32] = (2 * declared_rate % 2**32).to_bytes(4, "little")
    return bytes(data)


def test_a_clip_shorter_than_the_voice_detectors_step_is_refused_by_name(tmp_path):
    soundfile.write(tmp_path / "blip.wav", np.full(320, 0.1, dtype=np.float32), SAMPLE_RATE)  # 20 ms
    with pytest.raises(AudioError, match=r"blip.wav: 20 ms of audio is too short: at least 32 ms is needed"):
        load_audio(tmp_path / "blip.wav")
    soundfile.write(tmp_path / "enough.wav", np.full(MIN_SAMPLES, 0.1, dtype=np.float32), SAMPLE_RATE)
    assert load_audio(tmp_path / "enough.wav").size == MIN_SAMPLES


@pytest.mark.parametrize(
    "declared_rate, message",
    [(1, r"declares a sample rate of 1 Hz, below the 4000 Hz .* the header is probably damaged"),
     (100_000_000, r"too short: at least 32 ms is needed \(1600 samples at its declared 100000000 Hz\)"),
     (4_000_000_000, r"not readable as audio \(.*\): the file looks damaged or cut short")],
)
def test_an_absurd_declared_sample_rate_is_refused_saying_what_is_wrong(declared_rate, message):
    with pytest.raises(AudioError, match=f"odd.wav: .*{message}"):
        load_audio(wav_declaring_rate(1600, declared_rate), name="odd.wav")


def test_a_damaged_or_empty_file_says_what_is_wrong_and_what_to_do(tmp_path):
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    soundfile.write(tmp_path / "whole.flac", 0.3 * np.sin(2 * np.pi * 300 * t), SAMPLE_RATE)
    (tmp_path / "cut.flac").write_bytes((tmp_path / "whole.flac").read_bytes()[:100])
    with pytest.raises(AudioError, match=r"cut.flac: not readable as audio \(Internal psf_fseek\(\) failed.\): "
                                         r"the file looks damaged or cut short; export or download it again"):
        load_audio(tmp_path / "cut.flac")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty.wav: is empty \(0 bytes\)"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "notes.txt").write_bytes(b"plain words, not audio")
    with pytest.raises(AudioError, match=r"notes.txt: not readable as audio \(Format not recognised.\): not a format "
                                         r"libsndfile reads .*; convert it, e.g. ffmpeg -i \S*notes.txt \S*notes.flac"):
        load_audio(tmp_path / "notes.txt")


@pytest.mark.parametrize("container, suffix", [("mp4", "m4a"), ("adts", "aac")])
def test_m4a_and_aac_are_named_with_how_to_convert_them(tmp_path, container, suffix):
    av = pytest.importorskip("av")  # only to write the file; audiograft does not decode these
    path = tmp_path / f"voice.{suffix}"
    with av.open(str(path), "w", format=container) as output:
        stream = output.add_stream("aac", rate=SAMPLE_RATE)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, SAMPLE_RATE), np.float32), format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            output.mux(packet)
    with pytest.raises(AudioError, match=f"voice.{suffix}: M4A/AAC audio, which libsndfile cannot decode; convert it "
                                         rf"first, e.g. ffmpeg -i \S*voice.{suffix} \S*voice.flac"):
        load_audio(path)
    with pytest.raises(AudioError, match="upload.bin: M4A/AAC audio"):  # known by its bytes, not its name
        load_audio(path.read_bytes(), name="upload.bin")


@pytest.mark.parametrize(
    "waveform, cause",
    [(np.zeros((2, 800), np.float32), r"expected a non-empty 1-D waveform \(16 kHz mono\), got shape \(2, 800\)"),
     (np.zeros(0, np.float32), r"expected a non-empty 1-D waveform \(16 kHz mono\), got shape \(0,\)"),
     (np.zeros(800, np.int16), "expected float samples in \\[-1, 1\\], got int16"),
     (np.full(800, np.inf, np.float32), "holds NaN or infinite samples"),
     (np.zeros(MIN_SAMPLES - 1, np.float32), "31.9 ms of audio is too short: at least 32 ms is needed"),
     (np.zeros(3 * SAMPLE_RATE, np.float32), "3.0 s is longer than 2 s")],
)
def test_checked_waveform_names_the_clip_and_the_cause(waveform, cause):
    with pytest.raises(AudioError, match=f"clip 3: {cause}"):
        checked_waveform(waveform, "clip 3", max_seconds=2.0)


def test_checked_waveform_gives_contiguous_float32_and_a_long_clip_is_audio_too_long():
    waveform = np.zeros((2, MIN_SAMPLES), np.float64)[0]
    checked = checked_waveform(waveform, "clip")
    assert checked.dtype == np.float32 and checked.flags.c_contiguous and checked.size == MIN_SAMPLES
    with pytest.raises(AudioTooLong):
        checked_waveform(np.zeros(SAMPLE_RATE, np.float32), "clip", max_seconds=0.5)


def test_run_on_loaded_runs_the_readable_files_once_and_gives_each_bad_file_its_own_error(tmp_path):
    soundfile.write(tmp_path / "a.wav", np.full(SAMPLE_RATE, 0.1, np.float32), SAMPLE_RATE)
    soundfile.write(tmp_path / "b.wav", np.full(SAMPLE_RATE // 2, 0.1, np.float32), SAMPLE_RATE)
    soundfile.write(tmp_path / "long.wav", np.full(3 * SAMPLE_RATE, 0.1, np.float32), SAMPLE_RATE)
    calls = []

    def run(waveforms):
        calls.append([w.size for w in waveforms])
        return [f"{w.size} samples" for w in waveforms]

    paths = [tmp_path / "a.wav", tmp_path / "gone.wav", tmp_path / "b.wav", tmp_path / "long.wav"]
    results = run_on_loaded(paths, run, max_seconds=2.0)
    assert calls == [[SAMPLE_RATE, SAMPLE_RATE // 2]]
    assert results[0] == "16000 samples" and results[2] == "8000 samples"
    assert isinstance(results[1], AudioError) and "gone.wav: no such file" in str(results[1])
    assert isinstance(results[3], AudioTooLong)
    assert run_on_loaded([tmp_path / "gone.wav"], run)[0].args == results[1].args and len(calls) == 1


def test_write_opus_writes_a_smaller_ogg_opus_at_a_higher_compression_that_loads_back(tmp_path):
    waveform = make_clips([2.0])[0] * 0.5
    default = write_opus(tmp_path / "new" / "default.ogg", waveform)
    compressed = write_opus(tmp_path / "new" / "compressed.ogg", waveform, compression_level=0.95)
    for path in (default, compressed):
        info = soundfile.info(str(path))
        assert (info.format, info.subtype) == ("OGG", "OPUS")
        assert abs(load_audio(path).size - waveform.size) < 0.01 * SAMPLE_RATE
    assert compressed.stat().st_size < default.stat().st_size
    assert sorted(p.name for p in default.parent.iterdir()) == ["compressed.ogg", "default.ogg"]


def test_write_audio_writes_a_16_bit_16_khz_flac_that_loads_back(tmp_path):
    waveform = make_clips([0.5])[0] * 0.5
    path = write_audio(tmp_path / "new" / "clip.flac", waveform)
    info = soundfile.info(str(path))
    assert (info.samplerate, info.format, info.subtype, info.frames) == (16000, "FLAC", "PCM_16", waveform.size)
    np.testing.assert_allclose(load_audio(path), waveform, atol=1 / 2**15)
    assert [p.name for p in path.parent.iterdir()] == ["clip.flac"]  # no temporary file left beside it


def test_write_clip_writes_each_clip_format_and_refuses_others(tmp_path):
    waveform = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    flac = write_clip(tmp_path / f"a{CLIP_FORMATS['flac']}", waveform, "flac")
    opus = write_clip(tmp_path / f"a{CLIP_FORMATS['opus']}", waveform, "opus")
    assert (soundfile.info(flac).format, soundfile.info(opus).format) == ("FLAC", "OGG")
    assert opus.stat().st_size < flac.stat().st_size
    with pytest.raises(ValueError, match="mp3"):
        write_clip(tmp_path / "a.mp3", waveform, "mp3")
