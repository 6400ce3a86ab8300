"""Manifests: the JSONL record of speech clips that corpora write and training and evaluation read.

One utterance a line:
    {"audio": "clips/a.flac", "text": "...", "duration": 3.2,
     "words": [{"word": "...", "start": 0.1, "end": 0.4}], "speaker": "...", "split": "train"}
`audio` is relative to the manifest's directory or absolute; `words`, `speaker` and `split` are optional; any other
field (a synthetic voice's "rate" and "pitch") is kept in `Utterance.metadata` and written back as it was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from audiograft.files import write_text_atomically


@dataclass(frozen=True)
class Word:
    """One word, for references and hypotheses alike: a manifest's words have times and no confidence; a
    transcript's have times and confidence where they were asked for and can be known (None otherwise)."""

    word: str
    start: float | None = None
    end: float | None = None
    confidence: float | None = None

    @classmethod
    def coerce(cls, value: Word | Mapping[str, Any] | Any) -> Word:
        """Accepts a Word, a {"word", "start", "end", "confidence"} mapping, or any object with those attributes."""
        if isinstance(value, Word):
            return value
        get = value.get if isinstance(value, Mapping) else partial(getattr, value)
        return cls(str(get("word")), get("start", None), get("end", None), get("confidence", None))

    def to_dict(self) -> dict[str, Any]:
        """Its known fields, as a manifest record holds them."""
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass
class Utterance:
    audio: Path
    text: str
    duration: float
    words: list[Word] | None = None
    speaker: str | None = None
    split: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # the record's other fields, as they were
    # Where it was read, "manifest:line", so that a problem met later names the line; not part of the record.
    source: str | None = field(default=None, compare=False, repr=False)

    def to_json(self, relative_to: Path) -> str:
        values = asdict(self)
        del values["source"]
        values.update(values.pop("metadata"))
        if self.words is not None:
            values["words"] = [word.to_dict() for word in self.words]
        audio = Path(self.audio)
        values["audio"] = str(audio.relative_to(relative_to) if audio.is_relative_to(relative_to) else audio)
        return json.dumps({k: v for k, v in values.items() if v is not None}, ensure_ascii=False)


class ManifestError(ValueError):
    """A manifest line that cannot be used; the message names the file and the line number."""


# Evaluation splits: the real-speech dev set, a synthetic corpus's held-out voices and sentences, the non-speech set.
HELD_OUT_SPLITS = frozenset({"dev", "test", "nonspeech"})

_REQUIRED = {"audio": str, "text": str, "duration": (int, float)}
_OPTIONAL = {"words": list, "speaker": str, "split": str}


def read_manifest(path: str | Path, split: str | None = None) -> list[Utterance]:
    """Read and validate every line; the first problem raises ManifestError naming `path:line`."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest")
    utterances = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                utterance = _parse_line(line, path.parent)
            except ManifestError as error:
                raise ManifestError(f"{path}:{number}: {error}") from None
            if split is None or utterance.split == split:
                utterance.source = f"{path}:{number}"
                utterances.append(utterance)
    return utterances


def read_training_manifest(path: str | Path) -> list[Utterance]:
    """`read_manifest` for training: a record in a held-out split raises ManifestError naming its line, so that no
    evaluation clip is ever trained on."""
    utterances = read_manifest(path)
    held_out = [u for u in utterances if u.split in HELD_OUT_SPLITS]
    if held_out:
        raise ManifestError(f"{held_out[0].source}: split {held_out[0].split!r} is held out for evaluation "
                            f"({len(held_out)} such records); train on a manifest of training clips only")
    return utterances


def _parse_line(line: str, root: Path) -> Utterance:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ManifestError(f"not valid JSON ({error.msg})") from None
    return parse_record(record, root)


def parse_record(record: Any, root: Path) -> Utterance:
    """One manifest record (a parsed JSON line) as an Utterance, its `audio` taken relative to `root`;
    ManifestError says what is wrong with it."""
    if not isinstance(record, dict):
        raise ManifestError("expected a JSON object")
    for key, kind in _REQUIRED.items():
        if key not in record:
            raise ManifestError(f"missing {key!r}")
        if not isinstance(record[key], kind) or isinstance(record[key], bool):
            raise ManifestError(f"{key!r} has the wrong type ({type(record[key]).__name__})")
    for key, kind in _OPTIONAL.items():
        if key in record and not isinstance(record[key], kind):
            raise ManifestError(f"{key!r} has the wrong type ({type(record[key]).__name__})")
    if record["duration"] <= 0:
        raise ManifestError(f"'duration' must be positive, got {record['duration']}")
    words = None
    if "words" in record:
        words = [_parse_word(word, index) for index, word in enumerate(record["words"])]
        for previous, word in zip(words, words[1:]):
            if word.start < previous.start:
                raise ManifestError(f"words are out of order at {word.word!r}")
    audio = Path(record["audio"])
    return Utterance(
        audio=audio if audio.is_absolute() else root / audio,
        text=record["text"],
        duration=float(record["duration"]),
        words=words,
        speaker=record.get("speaker"),
        split=record.get("split"),
        metadata={k: v for k, v in record.items() if k not in _REQUIRED and k not in _OPTIONAL},
    )


def _parse_word(word: Any, index: int) -> Word:
    if not isinstance(word, dict) or not {"word", "start", "end"} <= set(word):
        raise ManifestError(f"word {index} needs 'word', 'start' and 'end'")
    if not 0 <= word["start"] <= word["end"]:
        raise ManifestError(f"word {index} ({word['word']!r}) has start {word['start']} after end {word['end']}")
    return Word(str(word["word"]), float(word["start"]), float(word["end"]))


def write_manifest(path: str | Path, utterances: Sequence[Utterance]) -> Path:
    """Write every utterance, one a line, atomically; `audio` paths under the manifest's directory become relative."""
    path = Path(path)
    return write_text_atomically(path, "".join(u.to_json(path.parent) + "\n" for u in utterances))
