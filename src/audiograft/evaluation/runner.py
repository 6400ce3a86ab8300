"""Running systems over a manifest: the graft through the Transcriber, and Whisper itself as the baseline."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from rich.progress import Progress
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from audiograft.audio.io import AudioError, run_on_loaded
from audiograft.evaluation.metrics import (
    ENGLISH,
    EvaluationResult,
    Hypothesis,
    expected_calibration_error,
    judged_words,
    score,
)
from audiograft.inference.alignment import ConfidenceCalibrator
from audiograft.inference.transcriber import Transcriber, TranscriptionOptions
from audiograft.inference.transcript import Transcript
from audiograft.manifest import Utterance


def run_system(
    transcribe: Callable[[list[np.ndarray]], list[str] | list[Transcript]],
    utterances: Sequence[Utterance],
    batch_size: int,
    description: str = "transcribing",
    max_seconds: float | None = None,
) -> tuple[list[Hypothesis], float]:
    """Run a transcriber over manifest utterances, shortest first in batches; returns hypotheses and wall seconds.

    `transcribe` gives a text or a Transcript per clip; a Transcript's words (timings, confidences) are scored too.
    The clock covers loading audio and running the system, not loading the model. A file that cannot be
    read, or is longer than `max_seconds`, becomes a Hypothesis with an error and the rest go on.
    """
    order = sorted(range(len(utterances)), key=lambda i: utterances[i].duration)
    hypotheses: dict[int, Hypothesis] = {}
    start = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task(description, total=len(order))
        for first in range(0, len(order), batch_size):
            indices = order[first : first + batch_size]
            outputs = run_on_loaded([utterances[index].audio for index in indices], transcribe, max_seconds)
            for index, output in zip(indices, outputs):
                utterance = utterances[index]
                record = Hypothesis(
                    id=str(index), reference=utterance.text, hypothesis="", duration=utterance.duration,
                    audio=str(utterance.audio), reference_words=utterance.words, language=spoken_language(utterance),
                )
                if isinstance(output, AudioError):
                    record.error = str(output)
                elif isinstance(output, Transcript):
                    record.hypothesis = output.text
                    record.words = [word for segment in output.segments for word in segment.words] or None
                else:
                    record.hypothesis = output
                hypotheses[index] = record
            progress.advance(task, len(indices))
    wall_seconds = time.perf_counter() - start
    return [hypotheses[i] for i in range(len(utterances))], wall_seconds


def spoken_language(utterance: Utterance) -> str | None:
    """The language a manifest record says its clip speaks (its "language" field), or None: English."""
    language = utterance.metadata.get("language")
    return str(language) if language else None


def evaluate_model(
    model: Any,
    utterances: Sequence[Utterance],
    batch_size: int = 8,
    name: str = "",
    calibrated: bool = True,
    ctc_candidates: int = 0,
) -> EvaluationResult:
    """Score a GraftModel on manifest utterances of any length, through the Transcriber as users run it (voice
    activity gating, windows, decoding guards), with word timings wherever the model has a word aligner.
    `calibrated=False` scores the raw word confidences, as `fit_calibrator` needs them; `ctc_candidates` is
    TranscriptionOptions' letter-checked decoding."""
    options = TranscriptionOptions(batch_size=batch_size, ctc_candidates=ctc_candidates)
    transcriber = Transcriber(model, options=options, calibrated=calibrated)
    transcribe = partial(transcriber.transcribe_batch, word_timestamps=transcriber.has_word_aligner)
    hypotheses, wall_seconds = run_system(transcribe, utterances, batch_size)
    return score(hypotheses, wall_seconds=wall_seconds, model=name, device=str(model.device), batch_size=batch_size)


def fit_calibrator(
    model: Any, utterances: Sequence[Utterance], batch_size: int = 8
) -> tuple[ConfidenceCalibrator, float, float]:
    """Fit the model's word-confidence calibrator on its own transcripts of `utterances` (speakers it did not train
    on, so that its errors are the ones users will meet); returns it with the expected calibration error of the raw
    and of the calibrated confidences on those words."""
    judged = judged_words(evaluate_model(model, utterances, batch_size, calibrated=False).utterances)
    raw, correct = [w.confidence for w in judged], [w.correct for w in judged]
    calibrator = ConfidenceCalibrator.fit(raw, correct)
    return calibrator, expected_calibration_error(raw, correct), expected_calibration_error(
        [calibrator(value) for value in raw], correct)


class WhisperBaseline:
    """Whisper itself, decoder included, on the same audio: the encoder's own model as the reference point."""

    def __init__(self, name_or_path: str, device: str = "cpu", dtype: torch.dtype | None = None):
        dtype = dtype or (torch.float32 if torch.device(device).type == "cpu" else torch.float16)
        self.name = name_or_path
        self.device = torch.device(device)
        self.processor = WhisperProcessor.from_pretrained(name_or_path)
        self.model = WhisperForConditionalGeneration.from_pretrained(name_or_path, dtype=dtype).to(device).eval()

    @torch.no_grad()
    def transcribe(self, waveforms: list[np.ndarray], language: str = ENGLISH) -> list[str]:
        features = self.processor.feature_extractor(
            waveforms, sampling_rate=16_000, return_tensors="pt"
        ).input_features.to(self.device, self.model.dtype)
        tokens = self.model.generate(features, language=language, task="transcribe")
        return [text.strip() for text in self.processor.batch_decode(tokens, skip_special_tokens=True)]

    def evaluate(
        self, utterances: Sequence[Utterance], batch_size: int, max_seconds: float | None = None, device: str = ""
    ) -> EvaluationResult:
        """Score Whisper on manifest utterances, each clip decoded in the language its manifest record names
        (English when it names none): Whisper told the language, its best case."""
        by_language: dict[str, list[int]] = {}
        for index, utterance in enumerate(utterances):
            by_language.setdefault(spoken_language(utterance) or ENGLISH, []).append(index)
        hypotheses: dict[int, Hypothesis] = {}
        wall_seconds = 0.0
        for language, indices in by_language.items():
            group, seconds = run_system(
                partial(self.transcribe, language=language), [utterances[i] for i in indices], batch_size,
                f"whisper baseline ({language})", max_seconds=max_seconds,
            )
            wall_seconds += seconds
            for index, hypothesis in zip(indices, group, strict=True):
                hypothesis.id = str(index)
                hypotheses[index] = hypothesis
        return score([hypotheses[i] for i in range(len(utterances))], wall_seconds=wall_seconds,
                     model=f"whisper ({self.name})", device=device or str(self.device), batch_size=batch_size)
