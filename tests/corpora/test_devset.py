import io
import json
import tarfile

import soundfile
from conftest import make_clips

from audiograft.corpora.devset import LIBRIVOX_DIR, build_dev_manifest
from audiograft.manifest import read_manifest


def fake_sdist(path):
    clip = make_clips([1.0])[0]
    wav = io.BytesIO()
    soundfile.write(wav, clip, 16000, format="WAV")
    alignment = {"w": [{"b": 0.0, "d": 0.2, "t": "<sil>"}, {"b": 0.2, "d": 0.3, "t": "he"},
                       {"b": 0.5, "d": 0.4, "t": "was(2)"}]}
    files = {"fileids": b"clip-1\n", "clip-1.wav": wav.getvalue(), "clip-1.txt": b" he was\n",
             "clip-1.json": json.dumps(alignment).encode()}
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"pocketsphinx-5.1.1/{LIBRIVOX_DIR}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_dev_manifest_from_sdist_and_examples(tmp_path):
    examples = tmp_path / "examples"
    examples.mkdir()
    soundfile.write(examples / "jfk.flac", make_clips([2.0])[0], 16000)
    manifest = build_dev_manifest(tmp_path / "dev", examples, sdist=fake_sdist(tmp_path / "ps.tar.gz"))
    utterances = read_manifest(manifest)
    assert [u.speaker for u in utterances] == ["librivox", "jfk"]
    librivox = utterances[0]
    assert librivox.text == "he was" and librivox.duration == 1.0
    assert [(w.word, w.start, w.end) for w in librivox.words] == [("he", 0.2, 0.5), ("was", 0.5, 0.9)]
    assert soundfile.info(str(librivox.audio)).samplerate == 16000
    assert utterances[1].text.startswith("And so my fellow Americans")


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
