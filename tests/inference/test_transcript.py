import json

import pytest

from audiograft.inference.transcript import Segment, Transcript, Word, render


@pytest.fixture
def transcript():
    return Transcript(
        text="Hello there. General Kenobi.",
        duration=3725.5,
        segments=[
            Segment(0, 0.0, 1.2344, " Hello there.", [Word("Hello", 0.1, 0.5, 0.91234), Word("there.", 0.6, 1.2, 0.8)]),
            Segment(1, 3661.0, 3662.5, "General Kenobi.", [Word("General", 3661.0, 3661.6, 0.7)]),
            Segment(2, 3663.0, 3664.0, "  ", []),
        ],
    )


def test_json_shape_is_the_documented_one_and_round_trips(transcript):
    values = json.loads(render(transcript, "json"))
    assert list(values) == ["text", "language", "duration", "segments"]
    assert list(values["segments"][0]) == ["id", "start", "end", "text", "words"]
    assert values["segments"][0]["words"][0] == {"word": "Hello", "start": 0.1, "end": 0.5, "confidence": 0.912}
    assert values["segments"][0]["end"] == 1.234
    back = Transcript.from_dict(values)
    assert back.segments[1].words[0] == Word("General", 3661.0, 3661.6, 0.7)
    assert back.text == transcript.text


def test_srt_numbers_cues_from_one_with_comma_milliseconds_and_skips_empty_segments(transcript):
    assert render(transcript, "srt") == (
        "1\n00:00:00,000 --> 00:00:01,234\nHello there.\n\n"
        "2\n01:01:01,000 --> 01:01:02,500\nGeneral Kenobi.\n"
    )


def test_vtt_has_header_and_dot_milliseconds(transcript):
    assert render(transcript, "vtt") == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.234\nHello there.\n\n01:01:01.000 --> 01:01:02.500\nGeneral Kenobi.\n"
    )


def test_text_is_one_line_and_unknown_format_is_named(transcript):
    assert render(transcript, "text") == "Hello there. General Kenobi.\n"
    with pytest.raises(ValueError, match="'docx'"):
        render(transcript, "docx")


def test_word_coerce_accepts_mappings_and_objects():
    assert Word.coerce({"word": "a", "start": 0.1}) == Word("a", 0.1)
