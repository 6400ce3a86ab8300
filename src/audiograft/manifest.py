"""Manifests: the JSONL record of speech clips that corpora write and training and evaluation read.

One utterance a line:
    {"audio": "clips/a.flac", "text": "...", "duration": 3.2,
     "words": [{"word": "...", "start": 0.1, "end": 0.4}], "speaker": "...", "split": "train"}
`audio` is relative to the manifest's directory or absolute; `words`, `speaker` and `split` are optional.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class WordTiming:
    word: str
    start: float
    end: float


@dataclass
class Utterance:
    audio: Path
    text: str
    duration: float
    words: list[WordTiming] | None = None
    speaker: str | None = None
    split: str | None = None
    # Where it was read, "manifest:line", so that a problem met later names the line; not part of the record.
    source: str | None = field(default=None, compare=False, repr=False)

    def to_json(self, relative_to: Path) -> str:
        values = asdict(self)
        del values["source"]
        audio = Path(self.audio)
        values["audio"] = str(audio.relative_to(relative_to) if audio.is_relative_to(relative_to) else audio)
        return json.dumps({k: v for k, v in values.items() if v is not None}, ensure_ascii=False)


class ManifestError(ValueError):
    """A manifest line that cannot be used; the message names the file and the line number."""


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


def _parse_line(line: str, root: Path) -> Utterance:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ManifestError(f"not valid JSON ({error.msg})") from None
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
    )


def _parse_word(word: Any, index: int) -> WordTiming:
    if not isinstance(word, dict) or not {"word", "start", "end"} <= set(word):
        raise ManifestError(f"word {index} needs 'word', 'start' and 'end'")
    if not 0 <= word["start"] <= word["end"]:
        raise ManifestError(f"word {index} ({word['word']!r}) has start {word['start']} after end {word['end']}")
    return WordTiming(str(word["word"]), float(word["start"]), float(word["end"]))


def write_manifest(path: str | Path, utterances: Sequence[Utterance]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text("".join(u.to_json(path.parent) + "\n" for u in utterances), encoding="utf-8")
    temporary.replace(path)
    return path
