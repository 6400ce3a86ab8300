import json
from dataclasses import dataclass

import pytest

from audiograft.evaluation.metrics import (
    Hypothesis,
    expected_calibration_error,
    normalize,
    score,
    subsets,
    timestamp_errors,
    wer_by_duration,
)
from audiograft.inference.guards import loop_detected
from audiograft.manifest import Word


def one(reference: str, hypothesis: str, duration: float = 1.0, **kwargs):
    return score([Hypothesis("u", reference, hypothesis, duration, **kwargs)], wall_seconds=1.0)


def test_known_wer_with_edit_counts_and_alignment():
    result = one("the cat sat on the mat", "the cat sit on mat")
    assert result.wer == pytest.approx(2 / 6)
    assert (result.accuracy.substitutions, result.accuracy.deletions, result.accuracy.insertions) == (1, 1, 0)
    row = result.utterances[0]
    assert (row.substitutions, row.deletions, row.insertions, row.hits) == (1, 1, 0, 4)
    assert [(op.op, op.reference, op.hypothesis) for op in row.alignment] == [
        ("equal", ["the", "cat"], ["the", "cat"]),
        ("substitute", ["sat"], ["sit"]),
        ("equal", ["on"], ["on"]),
        ("delete", ["the"], []),
        ("equal", ["mat"], ["mat"]),
    ]


def test_corpus_wer_pools_edits_over_all_reference_words():
    result = score(
        [Hypothesis("a", "red green blue gold", "red green blue gold", 1.0), Hypothesis("b", "dark sky", "dark", 1.0)],
        wall_seconds=1.0,
    )
    assert result.wer == pytest.approx(1 / 6)  # not the mean of per-utterance WERs (0.25)


def test_whisper_normaliser_folds_case_punctuation_titles_and_numbers():
    assert normalize("Mr. Smith paid twenty five dollars!") == "mister smith paid $25"
    assert normalize("Hello, World.") == "hello world"
    assert normalize("Um, I'm gonna colour it.") == "i am going to color it"
    assert one("Mr. Smith paid twenty-five dollars.", "mister smith paid $25").wer == 0.0


def test_other_languages_get_whispers_basic_normaliser_keeping_their_letters():
    assert normalize("¡Hola! Ése agente, ya ha sido autenticado.", "es") == "hola ése agente ya ha sido autenticado"
    assert normalize("Привет, мир!", "ru") == "привет мир"
    # The English normaliser would spell "Mr." out; another language's text keeps its own words.
    assert normalize("Mr. Smith", "fr") == "mr smith" and normalize("Mr. Smith", "en") == "mister smith"
    assert one("Clave incorrecta.", "clave incorrecta", language="es").wer == 0.0


def test_subsets_split_languages_short_and_long_clips():
    items = [
        Hypothesis("es", "uno dos tres", "uno dos", 2.0, language="es"),
        Hypothesis("en", "the cat sat on the mat today", "the cat sat on the mat today", 16.0),
        Hypothesis("en2", "Yes.", "no", 1.0, language="en"),
    ]
    found = {s.label: s for s in subsets(score(items, wall_seconds=1.0).utterances)}
    assert list(found) == ["language en", "language es", "short (1–4 words)", "long (15–30 s)"]
    assert (found["language es"].n_utterances, found["language es"].wer) == (1, pytest.approx(1 / 3))
    assert (found["language en"].n_utterances, found["language en"].wer) == (2, pytest.approx(1 / 8))
    assert (found["short (1–4 words)"].n_utterances, found["short (1–4 words)"].wer) == (2, pytest.approx(2 / 4))
    assert (found["long (15–30 s)"].n_utterances, found["long (15–30 s)"].wer) == (1, 0.0)
    english_only = subsets(score([items[1]], wall_seconds=1.0).utterances)
    assert [(s.label, s.n_utterances, s.wer) for s in english_only] == [
        ("short (1–4 words)", 0, None), ("long (15–30 s)", 1, 0.0)]


def test_cer_counts_characters_including_spaces():
    result = one("abc de", "abd de")
    assert result.cer == pytest.approx(1 / 6)
    assert result.utterances[0].cer == pytest.approx(1 / 6)


@pytest.mark.parametrize(
    ("text", "looping"),
    [
        ("for the kids the kids the kids the kids", True),  # bigram, 4 times
        ("no no no no", True),
        ("One, one, one, one.", True),  # Whisper's normaliser would merge these into "1111"
        ("a b c a b c a b c a b c", True),
        ("no no no", False),
        ("the kids the kids the kids", False),
        ("the cat sat on the mat and the dog sat on the rug", False),
        ("", False),
    ],
)
def test_loop_detected(text, looping):
    assert loop_detected(text) is looping


def test_loop_rate_ignores_loops_the_reference_has_too():
    result = score(
        [
            Hypothesis("loop", "we go home", "we go home home home home", 1.0),
            Hypothesis("song", "la la la la", "la la la la", 1.0),
            Hypothesis("fine", "good morning", "good morning", 1.0),
            Hypothesis("also", "good night", "good night", 1.0),
        ],
        wall_seconds=1.0,
    )
    assert [u.loop for u in result.utterances] == [True, False, False, False]
    assert result.failures.loop_rate == 0.25


def test_empty_output_rate_is_over_utterances_with_a_reference():
    result = score(
        [
            Hypothesis("empty", "hello there", "", 1.0),
            Hypothesis("fine", "hello there", "hello there", 1.0),
            Hypothesis("silence", "", "", 1.0),
        ],
        wall_seconds=1.0,
    )
    assert [u.empty for u in result.utterances] == [True, False, False]
    assert result.failures.empty_rate == 0.5
    assert result.failures.hallucination_rate == 0.0


def test_hallucination_on_empty_reference_and_on_far_too_long_output():
    result = score(
        [
            Hypothesis("silence", "", "Thank you for watching!", 1.0),
            Hypothesis("noise", "[noise]", "", 1.0),  # the normaliser drops bracketed tags: an empty reference
            Hypothesis("long", "yes please", " ".join(["word"] * 10), 1.0),  # 10 > 2 * 2 + 5
            Hypothesis("longish", "yes please", " ".join(["word"] * 9), 1.0),
        ],
        wall_seconds=1.0,
    )
    assert [u.hallucination for u in result.utterances] == [True, False, True, False]
    assert result.failures.hallucination_rate == 0.5


def test_expected_calibration_error_hand_computed():
    # Bin [0.9, 1.0): accuracy 0.5, confidence 0.95; bin [0.2, 0.3): accuracy 0, confidence 0.25; each half the words.
    ece = expected_calibration_error([0.95, 0.95, 0.25, 0.25], [True, False, False, False])
    assert ece == pytest.approx(0.5 * 0.45 + 0.5 * 0.25)
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0  # 1.0 falls in the top bin
    assert expected_calibration_error([0.75, 0.75], [True, False], bins=2) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        expected_calibration_error([], [])


def test_confidence_ece_in_score_uses_alignment_for_correctness():
    words = [{"word": w, "confidence": 0.8} for w in ["The", "cat", "sit", "on", "mat", "uh"]]
    row = one("The cat sat on the mat.", "The cat sit on mat uh", words=words).utterances[0]
    assert [w.correct for w in row.words] == [True, True, False, True, True, None]  # "uh" normalises to nothing
    result = one("The cat sat on the mat.", "The cat sit on mat uh", words=words)
    assert result.confidence_ece == pytest.approx(abs(4 / 5 - 0.8))


def test_timestamp_errors_hand_made_alignment():
    reference = [
        {"word": "The", "start": 0.0, "end": 0.2},
        {"word": "cat", "start": 0.3, "end": 0.5},
        {"word": "sat.", "start": 0.6, "end": 0.9},
    ]
    hypothesis = [
        Word("the", 0.02, 0.25),  # 20 ms, 50 ms
        Word("cat", 0.4, 0.5),  # 100 ms, 0 ms
        Word("mat", 0.6, 0.9),  # a substitution: not timed
    ]
    errors = timestamp_errors(reference, hypothesis)
    assert errors.n_words == 2
    assert errors.start_mae_ms == pytest.approx(60.0)
    assert errors.end_mae_ms == pytest.approx(25.0)
    assert errors.mae_ms == pytest.approx(42.5)
    assert errors.share_within(50) == pytest.approx(0.5)
    assert errors.share_within(100) == pytest.approx(1.0)


def test_timestamp_alignment_skips_inserted_words_and_normalises():
    reference = [{"word": "Mr.", "start": 1.0, "end": 1.3}, {"word": "Smith", "start": 1.4, "end": 1.8}]
    hypothesis = [Word("um", 0.5, 0.8), Word("extra", 0.8, 0.9), Word("mister", 1.0, 1.3), Word("Smith,", 1.41, 1.8)]
    errors = timestamp_errors(reference, hypothesis)
    assert errors.n_words == 2
    assert errors.start_mae_ms == pytest.approx(5.0)


def test_score_pools_timestamps_over_utterances():
    def timed(words, offset=0.0):
        return [{"word": w, "start": i + offset, "end": i + 0.5 + offset} for i, w in enumerate(words)]

    items = [
        Hypothesis(
            "a", "red sky", "red sky", 2.0, words=timed(["red", "sky"], 0.01), reference_words=timed(["red", "sky"])
        ),
        Hypothesis("b", "dawn", "dawn", 1.0, words=timed(["dawn"], 0.04), reference_words=timed(["dawn"])),
    ]
    result = score(items, wall_seconds=1.0)
    assert result.timestamps.n_words == 3
    assert result.to_dict()["timestamp_mae_ms"] == pytest.approx(20.0)


def test_word_coerce_accepts_mappings_and_objects():
    @dataclass
    class Timing:
        word: str
        start: float
        end: float

    assert Word.coerce(Timing("a", 0.1, 0.2)) == Word("a", 0.1, 0.2)
    assert Word.coerce({"word": "a", "start": 0.1, "end": 0.2, "confidence": 0.9}) == Word("a", 0.1, 0.2, 0.9)


def test_skipped_utterances_are_excluded_and_not_fatal():
    result = score(
        [
            Hypothesis("good", "hello world", "hello world", 2.0),
            Hypothesis("bad", "something else", "", 5.0, audio="bad.wav", error="audio: not readable"),
        ],
        wall_seconds=1.0,
    )
    assert result.wer == 0.0
    assert result.failures.empty_rate == 0.0
    assert result.speed.audio_seconds == 2.0
    assert [u.id for u in result.utterances] == ["good"]
    assert result.to_dict()["skipped"] == [{"id": "bad", "audio": "bad.wav", "error": "audio: not readable"}]


def test_all_skipped_gives_null_metrics():
    result = score([Hypothesis("bad", "x", "", 1.0, error="boom")], wall_seconds=0.0)
    data = json.loads(result.to_json())
    assert data["wer"] is None and data["cer"] is None and data["rtfx"] is None
    assert data["n_utterances"] == 0 and data["n_skipped"] == 1


def test_wer_by_duration_lists_every_bucket():
    result = score([Hypothesis("short", "a b", "a", 2.0), Hypothesis("long", "c d", "c d", 12.0)], wall_seconds=1.0)
    buckets = wer_by_duration(result.utterances)
    assert [b.label for b in buckets] == ["<5 s", "5–10 s", "10–20 s", "20–30 s", "≥30 s"]
    assert [b.n_utterances for b in buckets] == [1, 0, 1, 0, 0]
    assert [b.wer for b in buckets] == [0.5, None, 0.0, None, None]


TOP_LEVEL_KEYS = {
    "model", "wer", "cer", "hits", "substitutions", "deletions", "insertions", "n_utterances", "n_skipped",
    "audio_seconds", "wall_seconds", "rtfx", "device", "batch_size", "hallucination_rate", "loop_rate",
    "empty_rate", "timestamp_mae_ms", "timestamps", "confidence_ece", "subsets", "baseline", "skipped",
    "utterances",
}  # fmt: skip
UTTERANCE_KEYS = {
    "id", "audio", "duration", "reference", "hypothesis", "reference_normalized", "hypothesis_normalized", "wer",
    "cer", "hits", "substitutions", "deletions", "insertions", "alignment", "hallucination", "loop", "empty",
    "words", "timestamp_mae_ms", "language",
}  # fmt: skip


def test_json_keys_are_present_and_stable():
    items = [Hypothesis("a", "the cat", "the cat", 3.0, audio="a.flac"), Hypothesis("b", "a dog", "a dig", 1.0)]
    baseline = score(items, wall_seconds=2.0, model="whisper", device="cpu", batch_size=4)
    result = score(items, wall_seconds=0.5, model="graft", device="cuda", batch_size=16, baseline=baseline)
    data = json.loads(result.to_json())
    assert set(data) == TOP_LEVEL_KEYS
    assert set(data["baseline"]) == TOP_LEVEL_KEYS
    assert data["baseline"]["baseline"] is None
    assert all(set(row) == UTTERANCE_KEYS for row in data["utterances"])
    assert data["rtfx"] == pytest.approx(8.0)
    assert (data["device"], data["batch_size"], data["model"]) == ("cuda", 16, "graft")
    assert data["timestamp_mae_ms"] is None and data["confidence_ece"] is None
    assert json.loads(score(items, wall_seconds=0.5).to_json()).keys() == data.keys()


@pytest.mark.parametrize(
    "text, kept",
    [
        ("so I said thank you, Thank you thank you thank you and then", "so I said thank you,"),
        ("x - y x y x y x y", "x - y"),
        ("the cat sat on the mat", None),
        ("", None),
    ],
)
def test_find_loop_gives_where_the_first_copy_ends(text, kept):
    from audiograft.inference.guards import find_loop

    words = text.split()
    end = find_loop(words)
    assert (None if end is None else " ".join(words[:end])) == kept
