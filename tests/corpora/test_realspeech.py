import dataclasses
import gzip

import numpy as np
import pytest
import soundfile
from conftest import deb_bytes

from audiograft.corpora import realspeech
from audiograft.corpora.realspeech import (
    RealSpeechError,
    build_real_speech,
    check_language,
    check_package,
    clean_transcript,
    fetch_packages,
    read_script,
    speech_seconds,
)
from audiograft.manifest import read_manifest

SOUNDS = "usr/share/asterisk/sounds"


def burst(seconds: float, rate: int = 8000, pad: float = 0.3) -> np.ndarray:
    """A tone of `seconds` between `pad` seconds of near-silence, as a telephony prompt is recorded."""
    t = np.arange(int(seconds * rate)) / rate
    silence = np.full(int(pad * rate), 1e-4, dtype=np.float32)
    return np.concatenate([silence, 0.3 * np.sin(2 * np.pi * 300 * t).astype(np.float32), silence])


def write_wav(path, seconds, rate=8000):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, burst(seconds, rate), rate)


def write_package_docs(root, package, script=None):
    doc = root / package / "usr/share/doc" / package
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text(f"{package}: the licence text\n")
    if script is not None:
        language = package.rsplit("-", 1)[-1]
        (doc / f"core-sounds-{language}.txt.gz").write_bytes(gzip.compress(script.encode("utf-8-sig")))


def fake_tree(root):
    """Italian core sounds (wav only) and Menardi's prompts, in the packages' own layout; an English package beside."""
    write_package_docs(root, "asterisk-core-sounds-it", "; Core Asterisk Sounds in Italian\n\n"
                       "hello: Buongiorno a tutti.\nbeep: [un suono]\ndigits/1: uno\nother: Altro testo.\n"
                       "letters/at: a [@]\n")
    core = root / "asterisk-core-sounds-it-wav" / SOUNDS / "it_IT_m_Carlo"
    write_package_docs(root, "asterisk-core-sounds-it-wav")
    for name, seconds in {"hello": 1.0, "beep": 0.4, "digits/1": 0.5, "other": 1.0, "letters/at": 0.4,
                          "untranscribed": 0.8}.items():
        write_wav(core / f"{name}.wav", seconds)
    menardi = root / "asterisk-prompt-it-menardi-wav" / SOUNDS / "it_IT_f_Menardi"
    write_package_docs(root, "asterisk-prompt-it-menardi-wav")
    # Read 10% slower than Carlo, except "other", whose twice-as-long reading is another text.
    for name, seconds in {"hello": 1.1, "digits/1": 0.55, "letters/at": 0.44, "other": 2.0,
                          "untranscribed": 0.8}.items():
        write_wav(menardi / f"{name}.wav", seconds)
    write_package_docs(root, "asterisk-core-sounds-en", "hello: Hello everyone.\n")
    write_wav(root / "asterisk-core-sounds-en-wav" / SOUNDS / "en_US_f_Allison" / "hello.wav", 1.0)
    return root


def test_builds_train_and_dev_from_different_speakers(tmp_path):
    out = tmp_path / "out"
    summary = build_real_speech(out, fake_tree(tmp_path / "packages"), languages=["it"])
    train, dev = read_manifest(out / "train.jsonl"), read_manifest(out / "dev.jsonl")
    assert {u.speaker for u in train} == {"core-it-carlo"} and {u.speaker for u in dev} == {"it-menardi"}
    assert {u.metadata["prompt"]: u.text for u in train} == {
        "hello": "Buongiorno a tutti.", "digits/1": "uno", "other": "Altro testo.", "letters/at": "a"}
    # "other" is dropped from the dev voice: its reading is far longer than the core voice's.
    assert sorted(u.metadata["prompt"] for u in dev) == ["digits/1", "hello", "letters/at"]
    assert all(u.metadata["language"] == "it" for u in train + dev)
    assert {u.metadata["transcript"] for u in train} == {"own"} and {u.metadata["transcript"] for u in dev} == {
        "borrowed"}
    clip = dev[0]
    assert soundfile.info(str(clip.audio)).samplerate == 16000 and clip.audio.suffix == ".flac"
    assert clip.duration == pytest.approx(soundfile.info(str(clip.audio)).duration, abs=1e-3)
    assert len(read_manifest(out / "manifest.jsonl")) == len(train) + len(dev)
    assert summary.skipped["core-it-carlo", "no transcript"] == 1  # untranscribed
    assert summary.skipped["core-it-carlo", "no usable text"] == 1  # beep: a note only
    assert summary.skipped["it-menardi", "borrowed text failed the length check"] == 1
    assert summary.utterances["it", "core-it-carlo", "train"] == 4
    assert summary.sources["core-it-carlo"] == "asterisk-core-sounds-it-wav (wav)"
    licences = (out / "LICENCES" / "README.md").read_text()
    assert "asterisk-prompt-it-menardi-wav | CC-BY-SA-3.0 Italy" in licences
    assert (out / "LICENCES" / "asterisk-core-sounds-it-wav.copyright").read_text().startswith("asterisk-core")


def test_a_voice_of_another_translation_keeps_only_the_shared_prompts(tmp_path, monkeypatch):
    voices = tuple(dataclasses.replace(v, shared_prompts=("digits/",)) if v.speaker == "it-menardi" else v
                   for v in realspeech.VOICES)
    monkeypatch.setattr(realspeech, "VOICES", voices)
    summary = build_real_speech(tmp_path / "out", fake_tree(tmp_path / "packages"), languages=["it"])
    assert [u.metadata["prompt"] for u in read_manifest(tmp_path / "out" / "dev.jsonl")] == ["digits/1"]
    assert summary.skipped["it-menardi", "another translation's prompt"] == 3  # hello, letters/at, other


def test_never_reads_english(tmp_path, monkeypatch):
    root = fake_tree(tmp_path / "packages")
    with pytest.raises(RealSpeechError, match="held out for evaluation"):
        build_real_speech(tmp_path / "out", root, languages=["en"])
    for package in ("asterisk-core-sounds-en", "asterisk-core-sounds-en-wav", "asterisk-prompt-en-us"):
        with pytest.raises(RealSpeechError, match="held out for evaluation"):
            check_package(package)
    build_real_speech(tmp_path / "out", root)  # every allowed language: the English tree beside is left alone
    utterances = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert {u.metadata["language"] for u in utterances} == {"it"}
    assert not any("en" in p.name.split("-") for p in (tmp_path / "out" / "LICENCES").iterdir())
    # An English .deb in the cache is never picked up, and nothing is downloaded without apt-get.
    cache = tmp_path / "debs"
    cache.mkdir()
    (cache / "asterisk-core-sounds-en-wav_1.6.1-1_all.deb").write_bytes(b"!<arch>\n")
    (cache / "asterisk-core-sounds-it_1.6.1-1_all.deb").write_bytes(b"!<arch>\n")
    monkeypatch.setattr(realspeech.shutil, "which", lambda name: None)
    assert list(fetch_packages(cache)) == ["asterisk-core-sounds-it"]
    with pytest.raises(RealSpeechError, match="held out for evaluation"):
        fetch_packages(cache, ["en"])


def test_check_language_allows_only_the_listed_languages():
    assert check_language("ru") == "ru"
    for language in ("en", "de", "EN"):
        with pytest.raises(RealSpeechError, match="not one the real-speech builder reads"):
            check_language(language)
    with pytest.raises(RealSpeechError, match="not one of the real-speech packages"):
        check_package("asterisk-core-sounds-de-wav")


@pytest.mark.parametrize(("raw", "clean"), [
    ("Buongiorno a  tutti. ", "Buongiorno a tutti."),
    ("[ascending tones]", None),
    ("(beep)", None),
    ("<beep ascending>", None),
    ("", None),
    ("a [@]", "a"),
    ("Voce disattivata. (You are now muted.)", "Voce disattivata."),
    ("Sus saludos [temporales] estan actualmente en uso", None),  # a note between words: read out or not?
    ("La chiamata non pu? essere completata.", None),  # a letter lost to the file's encoding
    ("Entrada incorrecta. Buzon?", "Entrada incorrecta. Buzon?"),
    ("Pour augmenter le volume de votre voix...\"", "Pour augmenter le volume de votre voix..."),
    ("Голосовая почта. Номер абонента?", "Голосовая почта. Номер абонента?"),
])
def test_clean_transcript(raw, clean):
    assert clean_transcript(raw) == clean


def test_read_script_leaves_out_names_given_two_texts(tmp_path):
    script = tmp_path / "core-sounds-es.txt"
    script.write_text("\ufeff; comment: not a prompt\n\ndigits/0: cero\ndigits/0: diez\ndigits/2: dos\n"
                      "beep: [tono simple]\n", encoding="utf-8")
    assert read_script(script) == {"digits/2": "dos", "beep": "[tono simple]"}


def test_speech_seconds_leaves_out_the_silence_around():
    assert speech_seconds(np.asarray(burst(1.0, rate=16000))) == pytest.approx(1.0, abs=0.04)
    assert speech_seconds(np.zeros(100, dtype=np.float32)) == 0.0


def test_decode_prompt_reads_raw_g722_at_16_khz(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "hello.g722"
    with av.open(str(path), "w", format="g722") as container:
        stream = container.add_stream("g722", rate=16000, layout="mono")
        samples = (burst(1.0, rate=16000) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    waveform = realspeech.decode_prompt(path, "g722")
    assert waveform.dtype == np.float32 and abs(waveform.size / 16000 - 1.6) < 0.05
    assert speech_seconds(waveform) == pytest.approx(1.0, abs=0.06)
    (tmp_path / "empty.gsm").write_bytes(b"")
    with pytest.raises(realspeech.AudioError, match="empty.gsm"):
        realspeech.decode_prompt(tmp_path / "empty.gsm", "gsm")


def test_data_real_command_unpacks_cached_debs_without_apt(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from audiograft.cli import app

    tree = fake_tree(tmp_path / "packages")
    debs = tmp_path / "debs"
    debs.mkdir()
    for package in tree.iterdir():
        files = {f"./{p.relative_to(package).as_posix()}": p.read_bytes() for p in package.rglob("*") if p.is_file()}
        (debs / f"{package.name}_1.0_all.deb").write_bytes(deb_bytes(files))
    monkeypatch.setattr(realspeech.shutil, "which", lambda name: None)  # no apt-get: the cached .debs only
    result = CliRunner().invoke(app, ["data", "real", str(tmp_path / "out"), "--debs", str(debs), "--language", "it"])
    assert result.exit_code == 0, result.output
    assert "it core-it-carlo" in result.output and "it-menardi: asterisk-prompt-it-menardi-wav (wav)" in result.output
    assert {u.speaker for u in read_manifest(tmp_path / "out" / "dev.jsonl")} == {"it-menardi"}
    result = CliRunner().invoke(app, ["data", "real", str(tmp_path / "out"), "--debs", str(debs), "--language", "en"])
    assert result.exit_code != 0 and "held out for evaluation" in result.output, result.output
