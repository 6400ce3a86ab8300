"""Scoring of already-produced transcripts: accuracy, failure modes, speed, word timestamps, confidence calibration.

Nothing here runs a model: the caller passes one `Hypothesis` per utterance (reference, output, duration, optional
word timings and confidences) plus the wall time the system took, and `score` returns an `EvaluationResult`.

Definitions (all computed on text normalised with Whisper's English normaliser, as Whisper's own evaluations do):
- WER and CER are corpus level: total edits over total reference words (characters), via jiwer.
- hallucination: output on a clip whose normalised reference is empty (silence, noise), or output with more than
  `2 * reference words + 5` words. Rate over all scored utterances.
- loop: the output repeats an n-gram (n = 1..4) back to back at least 4 times ("a a a a", "x y x y x y x y") and
  the reference does not. Rate over all scored utterances.
- empty: no output words for a non-empty reference. Rate over utterances with a non-empty reference.
- RTFx: audio seconds over wall seconds (higher is faster).
- timestamps: hypothesis words are aligned to reference words by jiwer; only words aligned as equal are timed.
- confidence ECE: a hypothesis word is correct when jiwer aligns it as equal to a reference word.
Utterances that carry an `error` are listed under `skipped` and left out of every metric.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from typing import Any

import jiwer
import numpy as np
from whisper_normalizer.basic import BasicTextNormalizer
from whisper_normalizer.english import EnglishTextNormalizer

from audiograft.inference.guards import loop_detected
from audiograft.manifest import Word

logger = logging.getLogger(__name__)

HALLUCINATION_LENGTH_FACTOR = 2
HALLUCINATION_LENGTH_SLACK = 5
TIMESTAMP_TOLERANCES_MS = (50, 100)
DURATION_BUCKET_EDGES = (5.0, 10.0, 20.0, 30.0)
# The reported subsets where speech models fail apart: clips of a few words, and clips filling most of a window.
SHORT_WORDS = range(1, 5)
LONG_SECONDS = (15.0, 30.0)
ENGLISH = "en"


@cache
def _normalizer(english: bool) -> EnglishTextNormalizer | BasicTextNormalizer:
    return EnglishTextNormalizer() if english else BasicTextNormalizer()


def normalize(text: str, language: str | None = None) -> str:
    """Whisper's normalisation, as its paper scores: for English (language None or "en") lower case, no punctuation
    or fillers, numbers as digits, US spelling; for other languages its basic normaliser (lower case, no
    punctuation or symbols)."""
    return " ".join(_normalizer(language in (None, ENGLISH))(text).split())


@dataclass
class Hypothesis:
    """One utterance as the system under test saw it. Set `error` for a clip that could not be run."""

    id: str
    reference: str
    hypothesis: str
    duration: float
    audio: str | None = None
    words: Sequence[Word | Mapping[str, Any]] | None = None
    reference_words: Sequence[Word | Mapping[str, Any]] | None = None
    error: str | None = None
    language: str | None = None  # the spoken language, when the manifest gives it (None: English)


@dataclass(frozen=True)
class AlignmentOp:
    op: str  # jiwer's chunk type: "equal", "substitute", "delete" or "insert"
    reference: list[str]
    hypothesis: list[str]


@dataclass(frozen=True)
class ScoredWord(Word):
    """A hypothesis word judged against the reference."""

    correct: bool | None = None  # None: the word normalises to nothing (a filler such as "uh"), so it is not judged


@dataclass
class TimestampErrors:
    """Absolute start and end errors of the matched words, in milliseconds; add two to pool them."""

    start_errors_ms: list[float] = field(default_factory=list)
    end_errors_ms: list[float] = field(default_factory=list)

    def __add__(self, other: TimestampErrors) -> TimestampErrors:
        return TimestampErrors(self.start_errors_ms + other.start_errors_ms, self.end_errors_ms + other.end_errors_ms)

    @property
    def n_words(self) -> int:
        return len(self.start_errors_ms)

    @property
    def start_mae_ms(self) -> float | None:
        return float(np.mean(self.start_errors_ms)) if self.n_words else None

    @property
    def end_mae_ms(self) -> float | None:
        return float(np.mean(self.end_errors_ms)) if self.n_words else None

    @property
    def mae_ms(self) -> float | None:
        return float(np.mean(self.start_errors_ms + self.end_errors_ms)) if self.n_words else None

    def share_within(self, tolerance_ms: float) -> float | None:
        """Share of matched words whose start and end are both within the tolerance."""
        if not self.n_words:
            return None
        worst = np.maximum(self.start_errors_ms, self.end_errors_ms)
        return float(np.mean(worst <= tolerance_ms))

    def to_dict(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "n_words": self.n_words,
            "mae_ms": self.mae_ms,
            "start_mae_ms": self.start_mae_ms,
            "end_mae_ms": self.end_mae_ms,
        }
        for tolerance in TIMESTAMP_TOLERANCES_MS:
            summary[f"within_{tolerance}ms"] = self.share_within(tolerance)
        return summary


@dataclass
class UtteranceScore:
    id: str
    audio: str | None
    duration: float
    reference: str
    hypothesis: str
    reference_normalized: str
    hypothesis_normalized: str
    wer: float  # for an empty reference jiwer counts each inserted word as 1.0
    cer: float
    hits: int
    substitutions: int
    deletions: int
    insertions: int
    alignment: list[AlignmentOp]
    hallucination: bool
    loop: bool
    empty: bool
    words: list[ScoredWord] | None = None
    timestamps: TimestampErrors | None = None
    language: str | None = None

    def to_dict(self) -> dict[str, Any]:
        row = {name: value for name, value in vars(self).items() if name not in ("alignment", "words", "timestamps")}
        row["alignment"] = [vars(op) for op in self.alignment]
        row["words"] = [vars(word) for word in self.words] if self.words is not None else None
        row["timestamp_mae_ms"] = self.timestamps.mae_ms if self.timestamps else None
        return row


@dataclass(frozen=True)
class Skipped:
    id: str
    audio: str | None
    error: str


@dataclass(frozen=True)
class Accuracy:
    wer: float | None
    cer: float | None
    hits: int
    substitutions: int
    deletions: int
    insertions: int


@dataclass(frozen=True)
class FailureRates:
    hallucination_rate: float
    loop_rate: float
    empty_rate: float


@dataclass(frozen=True)
class Speed:
    audio_seconds: float
    wall_seconds: float
    device: str
    batch_size: int

    @property
    def rtfx(self) -> float | None:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else None


@dataclass
class EvaluationResult:
    model: str
    accuracy: Accuracy
    failures: FailureRates
    speed: Speed
    utterances: list[UtteranceScore]
    skipped: list[Skipped]
    timestamps: TimestampErrors | None = None
    confidence_ece: float | None = None
    baseline: EvaluationResult | None = None

    @property
    def wer(self) -> float | None:
        return self.accuracy.wer

    @property
    def cer(self) -> float | None:
        return self.accuracy.cer

    @property
    def rtfx(self) -> float | None:
        return self.speed.rtfx

    def to_dict(self) -> dict[str, Any]:
        """Flat, stable keys; metrics that do not apply (no timings, no confidences, no baseline) are null."""
        return {
            "model": self.model,
            "wer": self.accuracy.wer,
            "cer": self.accuracy.cer,
            "hits": self.accuracy.hits,
            "substitutions": self.accuracy.substitutions,
            "deletions": self.accuracy.deletions,
            "insertions": self.accuracy.insertions,
            "n_utterances": len(self.utterances),
            "n_skipped": len(self.skipped),
            "audio_seconds": self.speed.audio_seconds,
            "wall_seconds": self.speed.wall_seconds,
            "rtfx": self.speed.rtfx,
            "device": self.speed.device,
            "batch_size": self.speed.batch_size,
            "hallucination_rate": self.failures.hallucination_rate,
            "loop_rate": self.failures.loop_rate,
            "empty_rate": self.failures.empty_rate,
            "timestamp_mae_ms": self.timestamps.mae_ms if self.timestamps else None,
            "timestamps": self.timestamps.to_dict() if self.timestamps else None,
            "confidence_ece": self.confidence_ece,
            "subsets": [subset.to_dict() for subset in subsets(self.utterances)],
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "skipped": [vars(skip) for skip in self.skipped],
            "utterances": [utterance.to_dict() for utterance in self.utterances],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Sum over equal-width confidence bins of (bin share of words) * |bin accuracy - bin mean confidence|."""
    confidence = np.asarray(confidences, dtype=float)
    hit = np.asarray(correct, dtype=float)
    if confidence.size == 0 or confidence.shape != hit.shape:
        raise ValueError(f"need as many confidences as correctness flags, at least one ({confidence.size}, {hit.size})")
    # A confidence of exactly 1.0 belongs to the top bin, not to an eleventh one.
    bin_of = np.minimum((np.clip(confidence, 0.0, 1.0) * bins).astype(int), bins - 1)
    error = 0.0
    for index in range(bins):
        in_bin = bin_of == index
        if in_bin.any():
            error += in_bin.mean() * abs(hit[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


@cache
def _word_key(word: str) -> str:
    # Each word is normalised alone and kept as one token ("I'm" -> "iam") so alignment indices map to timings.
    return normalize(word).replace(" ", "")


def _matched_words(reference: Sequence[str], hypothesis: Sequence[str]) -> dict[int, int]:
    """Hypothesis word index -> reference word index, for words jiwer aligns as equal after normalisation."""
    ref_index = [i for i, word in enumerate(reference) if _word_key(word)]
    hyp_index = [i for i, word in enumerate(hypothesis) if _word_key(word)]
    if not ref_index or not hyp_index:
        return {}
    output = jiwer.process_words(
        " ".join(_word_key(reference[i]) for i in ref_index), " ".join(_word_key(hypothesis[i]) for i in hyp_index)
    )
    matches = {}
    for chunk in output.alignments[0]:
        if chunk.type == "equal":
            for offset in range(chunk.hyp_end_idx - chunk.hyp_start_idx):
                matches[hyp_index[chunk.hyp_start_idx + offset]] = ref_index[chunk.ref_start_idx + offset]
    return matches


def timestamp_errors(
    reference_words: Sequence[Word | Mapping[str, Any]], hypothesis_words: Sequence[Word | Mapping[str, Any]]
) -> TimestampErrors:
    """Start/end errors of the hypothesis words that align (as equal) to a reference word; untimed words are ignored."""
    reference, hypothesis = (
        [word for word in map(Word.coerce, words) if word.start is not None and word.end is not None]
        for words in (reference_words, hypothesis_words)
    )
    errors = TimestampErrors()
    matches = _matched_words([w.word for w in reference], [w.word for w in hypothesis])
    for hyp_index, ref_index in sorted(matches.items()):
        errors.start_errors_ms.append(_error_ms(hypothesis[hyp_index].start, reference[ref_index].start))
        errors.end_errors_ms.append(_error_ms(hypothesis[hyp_index].end, reference[ref_index].end))
    return errors


def _error_ms(seconds: float, reference_seconds: float) -> float:
    # Rounded to the microsecond so that float noise (0.4 - 0.3 = 0.10000000000000003) does not miss a tolerance.
    return round(abs(seconds - reference_seconds) * 1000, 3)


def _scored_words(reference: str, words: Sequence[Word]) -> list[ScoredWord]:
    matches = _matched_words(reference.split(), [word.word for word in words])
    return [
        ScoredWord(w.word, w.start, w.end, w.confidence, (i in matches) if _word_key(w.word) else None)
        for i, w in enumerate(words)
    ]


def _is_hallucination(reference_words: int, hypothesis_words: int) -> bool:
    if reference_words == 0:
        return hypothesis_words > 0
    return hypothesis_words > HALLUCINATION_LENGTH_FACTOR * reference_words + HALLUCINATION_LENGTH_SLACK


def _score_utterance(item: Hypothesis) -> UtteranceScore:
    reference, hypothesis = normalize(item.reference, item.language), normalize(item.hypothesis, item.language)
    words = jiwer.process_words(reference, hypothesis)
    alignment = [
        AlignmentOp(
            chunk.type,
            words.references[0][chunk.ref_start_idx : chunk.ref_end_idx],
            words.hypotheses[0][chunk.hyp_start_idx : chunk.hyp_end_idx],
        )
        for chunk in words.alignments[0]
    ]
    n_reference, n_hypothesis = len(words.references[0]), len(words.hypotheses[0])
    hypothesis_words = [Word.coerce(word) for word in item.words] if item.words is not None else None
    timestamps = None
    if item.reference_words is not None and hypothesis_words is not None:
        timestamps = timestamp_errors(item.reference_words, hypothesis_words)
    return UtteranceScore(
        id=item.id,
        audio=item.audio,
        duration=item.duration,
        reference=item.reference,
        hypothesis=item.hypothesis,
        reference_normalized=reference,
        hypothesis_normalized=hypothesis,
        wer=float(words.wer),
        cer=float(jiwer.process_characters(reference, hypothesis).cer),
        hits=words.hits,
        substitutions=words.substitutions,
        deletions=words.deletions,
        insertions=words.insertions,
        alignment=alignment,
        hallucination=_is_hallucination(n_reference, n_hypothesis),
        loop=loop_detected(item.hypothesis) and not loop_detected(item.reference),
        empty=n_reference > 0 and n_hypothesis == 0,
        words=_scored_words(item.reference, hypothesis_words) if hypothesis_words is not None else None,
        timestamps=timestamps,
        language=item.language,
    )


def _rate(count: int, total: int) -> float:
    return count / total if total else 0.0


def _corpus_accuracy(utterances: Sequence[UtteranceScore]) -> Accuracy:
    if not utterances:
        return Accuracy(None, None, 0, 0, 0, 0)
    references = [u.reference_normalized for u in utterances]
    hypotheses = [u.hypothesis_normalized for u in utterances]
    words = jiwer.process_words(references, hypotheses)
    characters = jiwer.process_characters(references, hypotheses)
    return Accuracy(
        float(words.wer), float(characters.cer), words.hits, words.substitutions, words.deletions, words.insertions
    )


def judged_words(utterances: Iterable[UtteranceScore]) -> list[ScoredWord]:
    """Hypothesis words that have a confidence and were judged correct or wrong: what calibration is measured on."""
    return [
        word
        for utterance in utterances
        for word in utterance.words or ()
        if word.confidence is not None and word.correct is not None
    ]


def _confidence_ece(utterances: Iterable[UtteranceScore], bins: int) -> float | None:
    judged = judged_words(utterances)
    if not judged:
        return None
    return expected_calibration_error([w.confidence for w in judged], [w.correct for w in judged], bins)


def score(
    hypotheses: Sequence[Hypothesis],
    *,
    wall_seconds: float,
    model: str = "",
    device: str = "",
    batch_size: int = 1,
    baseline: EvaluationResult | None = None,
    calibration_bins: int = 10,
) -> EvaluationResult:
    """Scores one system's outputs. `wall_seconds` is the time the system took over all of them."""
    skipped = [Skipped(item.id, item.audio, item.error) for item in hypotheses if item.error is not None]
    for skip in skipped:
        logger.warning("skipping utterance %s: %s", skip.id, skip.error)
    utterances = [_score_utterance(item) for item in hypotheses if item.error is None]

    timed = [u.timestamps for u in utterances if u.timestamps is not None]
    with_reference = [u for u in utterances if u.reference_normalized]
    return EvaluationResult(
        model=model,
        accuracy=_corpus_accuracy(utterances),
        failures=FailureRates(
            hallucination_rate=_rate(sum(u.hallucination for u in utterances), len(utterances)),
            loop_rate=_rate(sum(u.loop for u in utterances), len(utterances)),
            empty_rate=_rate(sum(u.empty for u in with_reference), len(with_reference)),
        ),
        speed=Speed(sum(u.duration for u in utterances), wall_seconds, device, batch_size),
        utterances=utterances,
        skipped=skipped,
        timestamps=sum(timed, TimestampErrors()) if timed else None,
        confidence_ece=_confidence_ece(utterances, calibration_bins),
        baseline=baseline,
    )


@dataclass(frozen=True)
class Subset:
    label: str
    n_utterances: int
    wer: float | None  # None for a subset with no utterances
    cer: float | None

    def to_dict(self) -> dict[str, Any]:
        return vars(self).copy()


def subsets(utterances: Sequence[UtteranceScore]) -> list[Subset]:
    """Corpus WER and CER apart for each spoken language (when any clip is not English), for short clips (1–4
    reference words) and for long ones (15–30 s); the short and long subsets are always listed, so two systems'
    lists line up."""
    languages = sorted({u.language or ENGLISH for u in utterances})
    groups = {}
    if languages != [ENGLISH]:
        groups |= {f"language {language}": [u for u in utterances if (u.language or ENGLISH) == language]
                   for language in languages}
    groups[f"short ({SHORT_WORDS.start}–{SHORT_WORDS.stop - 1} words)"] = [
        u for u in utterances if len(u.reference_normalized.split()) in SHORT_WORDS
    ]
    low, high = LONG_SECONDS
    groups[f"long ({low:g}–{high:g} s)"] = [u for u in utterances if low <= u.duration <= high]
    return [
        Subset(label, len(members), accuracy.wer, accuracy.cer)
        for label, members in groups.items()
        for accuracy in [_corpus_accuracy(members)]
    ]


@dataclass(frozen=True)
class DurationBucket:
    label: str
    n_utterances: int
    wer: float | None  # None for a bucket with no utterances


def wer_by_duration(
    utterances: Sequence[UtteranceScore], edges: Sequence[float] = DURATION_BUCKET_EDGES
) -> list[DurationBucket]:
    """Corpus WER per clip-length bucket ("<5 s", "5–10 s", ..., "≥30 s"); every bucket is listed, so two systems'
    lists line up index by index."""
    bounds = [0.0, *edges, float("inf")]
    buckets = []
    for low, high in pairwise(bounds):
        members = [u for u in utterances if low <= u.duration < high]
        label = f"<{high:g} s" if low == 0 else f"≥{low:g} s" if high == float("inf") else f"{low:g}–{high:g} s"
        buckets.append(DurationBucket(label, len(members), _corpus_accuracy(members).wer))
    return buckets
