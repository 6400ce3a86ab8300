import json

import pytest
from conftest import write_lines

from audiograft.manifest import (
    ManifestError,
    Utterance,
    Word,
    parse_record,
    read_manifest,
    read_training_manifest,
    write_manifest,
)


def test_manifest_round_trip_resolves_relative_audio(tmp_path):
    utterances = [
        Utterance(tmp_path / "audio" / "a.flac", "hello there", 1.5, [Word("hello", 0.1, 0.5)], "slt", "train"),
        Utterance(tmp_path / "audio" / "b.flac", "good day", 2.0, split="test"),
    ]
    path = write_manifest(tmp_path / "manifest.jsonl", utterances)
    assert json.loads(path.read_text().splitlines()[0])["audio"] == "audio/a.flac"
    assert read_manifest(path) == utterances
    assert read_manifest(path, split="test") == utterances[1:]


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", "not valid JSON"),
        ({"text": "x", "duration": 1}, "missing 'audio'"),
        ({"audio": "a.wav", "text": 3, "duration": 1}, "'text' has the wrong type"),
        ({"audio": "a.wav", "text": "x", "duration": -1}, "'duration' must be positive"),
        ({"audio": "a.wav", "text": "x", "duration": 1, "words": [{"word": "x"}]}, "word 0 needs"),
        ({"audio": "a.wav", "text": "x", "duration": 1, "words": [{"word": "x", "start": 0.5, "end": 0.2}]},
         r"word 0 \(.x.\) has start 0.5 after end 0.2"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_manifest_errors_name_the_line(tmp_path, bad_line, message):
    good = {"audio": "a.wav", "text": "fine", "duration": 1.0}
    path = write_lines(tmp_path / "m.jsonl", [good, bad_line])
    with pytest.raises(ManifestError, match=f"m.jsonl:2: {message}"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "absent.jsonl")


def test_other_fields_are_kept_and_written_back_as_they_were(tmp_path):
    line = {"audio": "a.flac", "text": "hi", "duration": 1.0, "speaker": "slt", "split": "train",
            "rate": 1.1, "pitch": 40}
    utterance = parse_record(line, tmp_path)
    assert utterance.audio == tmp_path / "a.flac" and utterance.metadata == {"rate": 1.1, "pitch": 40}
    path = write_manifest(tmp_path / "m.jsonl", [utterance])
    assert json.loads(path.read_text()) == line
    assert read_manifest(path) == [utterance]
    with pytest.raises(ManifestError, match="missing 'text'"):
        parse_record({"audio": "a.flac", "duration": 1.0}, tmp_path)


def test_one_word_type_writes_only_what_is_known():
    assert Word("hi", 0.1, 0.3).to_dict() == {"word": "hi", "start": 0.1, "end": 0.3}
    assert Word("hi", confidence=0.9).to_dict() == {"word": "hi", "confidence": 0.9}
    assert Word.coerce({"word": "hi", "start": 0.1}) == Word("hi", 0.1)


@pytest.mark.parametrize("split", ["dev", "test", "nonspeech"])
def test_training_refuses_a_manifest_with_held_out_clips(tmp_path, split):
    train = {"audio": "a.wav", "text": "fine", "duration": 1.0, "split": "train"}
    path = write_lines(tmp_path / "m.jsonl", [train, {**train, "split": split}])
    with pytest.raises(ManifestError, match=f"m.jsonl:2: split '{split}' is held out for evaluation"):
        read_training_manifest(path)
    unsplit = {key: value for key, value in train.items() if key != "split"}
    assert len(read_training_manifest(write_lines(tmp_path / "ok.jsonl", [train, unsplit]))) == 2
