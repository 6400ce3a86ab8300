"""What a transcription produces (`Transcript` of `Segment`s of `Word`s) and how it is written out.

The JSON shape is stable and the same as the server's `verbose_json`:
    {"text", "language", "duration",
     "segments": [{"id", "start", "end", "text", "words": [{"word", "start", "end", "confidence"}]}]}
Times are seconds from the start of the file. `Word` is `audiograft.manifest.Word`, the one word type of references,
hypotheses and scored words. SRT and WebVTT are written here by hand, as Whisper's own
writers are: each is a dozen lines, not worth a dependency.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from audiograft.manifest import Word

OutputFormat = Literal["text", "json", "srt", "vtt"]
OUTPUT_FORMATS: tuple[str, ...] = ("text", "json", "srt", "vtt")
FILE_SUFFIXES = {"text": ".txt", "json": ".json", "srt": ".srt", "vtt": ".vtt"}


@dataclass
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)


@dataclass
class Transcript:
    text: str
    duration: float
    segments: list[Segment] = field(default_factory=list)
    language: str = "en"

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "language": self.language,
            "duration": round(self.duration, 3),
            "segments": [
                {
                    "id": s.id,
                    "start": round(s.start, 3),
                    "end": round(s.end, 3),
                    "text": s.text,
                    "words": [_word_dict(w) for w in s.words],
                }
                for s in self.segments
            ],
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Transcript:
        segments = [
            Segment(s["id"], s["start"], s["end"], s["text"], [Word.coerce(w) for w in s.get("words", [])])
            for s in values.get("segments", [])
        ]
        return cls(values["text"], values["duration"], segments, values.get("language", "en"))


def _word_dict(word: Word) -> dict[str, Any]:
    values = asdict(word)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()}


def render(transcript: Transcript, output_format: str) -> str:
    """The transcript as text (one line), JSON, SRT or WebVTT."""
    if output_format == "text":
        return transcript.text + "\n"
    if output_format == "json":
        return json.dumps(transcript.to_dict(), ensure_ascii=False, indent=2) + "\n"
    if output_format == "srt":
        blocks = [
            f"{number}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text.strip()}\n"
            for number, s in enumerate(_cues(transcript), start=1)
        ]
        return "\n".join(blocks)
    if output_format == "vtt":
        blocks = [f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text.strip()}\n" for s in _cues(transcript)]
        return "\n".join(["WEBVTT\n", *blocks])
    raise ValueError(f"unknown output format {output_format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")


def _cues(transcript: Transcript) -> list[Segment]:
    return [s for s in transcript.segments if s.text.strip()]


def _timestamp(seconds: float, decimal_marker: str) -> str:
    milliseconds = max(0, round(seconds * 1000))
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    seconds, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal_marker}{milliseconds:03d}"
