"""Transcriber: audio of any length -> Transcript, the way faster-whisper's `WhisperModel.transcribe` does it.

One pipeline, in order:
1. voice activity (Silero VAD): a clip with no speech gives an empty transcript and never reaches the model;
2. windows (`audiograft.audio.vad.plan_windows`): speech grouped into windows of at most the encoder's 30 s, cut only in
   pauses, so every stretch of speech is heard exactly once;
3. decoding: the windows of all clips in one batch stream, shortest first; each window's answer is bounded by its
   duration, and an answer that loops or runs to its bound is decoded again at rising temperatures (Whisper's
   fallback); if every temperature fails, the greedy answer is kept, cut after the loop's first copy; with
   `ctc_candidates`, more answers are sampled and the word aligner's CTC head keeps the one it hears best;
4. words: per-word confidence from the generated tokens' log-probabilities, and with `word_timestamps` times from
   the model's word aligner on the window's encoder frames (`audiograft.inference.alignment`);
5. stitching: windows become segments, their word times shifted from window to file time.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from transformers import LogitsProcessor, LogitsProcessorList

from audiograft.audio.io import (
    SAMPLE_RATE,
    AudioError,
    checked_waveform,
    load_audio,
    run_on_loaded,
)
from audiograft.audio.vad import Span, SpeechDetector, plan_windows, speech_regions
from audiograft.inference.alignment import (
    ConfidenceCalibrator,
    WordAligner,
    words_from_tokens,
)
from audiograft.inference.guards import find_loop
from audiograft.inference.options import TranscriptionOptions
from audiograft.inference.transcript import Segment, Transcript, Word
from audiograft.modeling.model import GraftModel, answer_token_budget
from audiograft.modeling.processor import conversation_messages

logger = logging.getLogger(__name__)

CHAT_MAX_NEW_TOKENS = 256


@dataclass
class _Answer:
    """One window's generated words, with the raw confidence of each (from its token probabilities)."""

    words: list[str]
    raw_confidences: list[float]
    failed: bool  # it loops, or ran to its token bound

    def cut_after_loop(self, options: TranscriptionOptions) -> _Answer:
        end = find_loop(self.words, options.loop_max_ngram, options.loop_min_repeats) or len(self.words)
        return _Answer(self.words[:end], self.raw_confidences[:end], self.failed)


@dataclass
class _Window:
    clip: int
    span: Span
    words: list[Word] = dataclasses.field(default_factory=list)  # times in seconds from the window start


class _ChosenTokenLogprobs(LogitsProcessor):
    """Log-probability, under the model's untempered distribution, of each token `generate` picks.

    A processor sees the ids picked so far, so each call records the previous step's pick: one step of
    log-probabilities is held at a time, where `output_logits` would keep every step's whole vocabulary.
    """

    def __init__(self) -> None:
        self._picked: list[torch.Tensor] = []
        self._previous: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._record(input_ids[:, -1:])
        self._previous = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def _record(self, picked: torch.Tensor) -> None:
        if self._previous is not None:
            # `generate` returns its ids where the caller asked (the CPU) while the scores stay on the GPU.
            self._picked.append(self._previous.gather(1, picked.to(self._previous.device)).squeeze(1))

    def finish(self, new_tokens: torch.Tensor) -> torch.Tensor:
        """(rows, new tokens) log-probabilities, once `generate` has returned `new_tokens`."""
        self._record(new_tokens[:, -1:])
        return torch.stack(self._picked, dim=1).cpu()


def stitch(windows: Sequence[tuple[Span, list[Word]]], duration: float) -> Transcript:
    """One clip's transcript from its windows in time order: a segment per window that said something, its words
    moved from window time to clip time."""
    segments = []
    for span, words in windows:
        if not words:
            continue
        offset = span.start / SAMPLE_RATE
        shifted = [
            Word(
                w.word,
                None if w.start is None else w.start + offset,
                None if w.end is None else w.end + offset,
                w.confidence,
            )
            for w in words
        ]
        text = " ".join(w.word for w in words)
        segments.append(Segment(len(segments), offset, span.end / SAMPLE_RATE, text, shifted))
    return Transcript(" ".join(s.text for s in segments), duration, segments)


class Transcriber:
    """Transcribes (or answers `task` about) audio of any length with a GraftModel.

    `device` applies when `model` is named ("default" or a saved graft directory); a GraftModel is used as it is.
    `calibrated=False` gives the raw word confidences even where the model has a calibrator: what one is fitted on.
    """

    def __init__(
        self,
        model: GraftModel | str = "default",
        device: str = "cpu",
        options: TranscriptionOptions | None = None,
        calibrated: bool = True,
    ):
        if not isinstance(model, GraftModel):
            model = GraftModel.from_pretrained(model, device=device, merge_lora=True)
        self.model = model
        self.processor = model.processor
        self.options = options or TranscriptionOptions()
        self._speech = SpeechDetector()
        # The model's trained companions, where it was saved with them: raw confidences stay uncalibrated without
        # a calibrator, and word timestamps need the aligner.
        directory = self.model.directory
        self._calibrator = ConfidenceCalibrator.load(directory) if calibrated and directory is not None else None
        self._aligner = WordAligner.from_pretrained(directory) if directory is not None else None

    @property
    def has_word_aligner(self) -> bool:
        return self._aligner is not None

    def transcribe(self, audio: str | Path | np.ndarray, **option_overrides: Any) -> Transcript:
        """One file or 16 kHz mono waveform, any length."""
        if isinstance(audio, np.ndarray):
            return self.transcribe_batch([audio], **option_overrides)[0]
        return self.transcribe_batch([load_audio(audio)], **option_overrides)[0]

    def transcribe_batch(self, audios: Sequence[np.ndarray], **option_overrides: Any) -> list[Transcript]:
        """16 kHz mono float waveforms of any length; the windows of all of them are batched together.

        Every clip is checked before any is decoded, so a bad one costs no work (AudioError names it).
        """
        options = self._resolve(option_overrides)
        waveforms = [checked_waveform(audio, f"clip {index}") for index, audio in enumerate(audios)]
        return self._transcribe(waveforms, options)

    def transcribe_files(
        self, paths: Sequence[str | Path], progress: bool = True, **option_overrides: Any
    ) -> Iterator[tuple[Path, Transcript | AudioError]]:
        """Each file with its transcript, in the given order; a file that cannot be read yields its AudioError and
        the rest go on. Files are loaded a batch at a time and their windows decoded together."""
        options = self._resolve(option_overrides)
        paths = [Path(path) for path in paths]
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True, disable=not progress) as bar:
            files = bar.add_task("files", total=len(paths))
            seconds = bar.add_task("audio seconds", total=round(sum(map(_seconds_or_zero, paths))))
            for first in range(0, len(paths), options.batch_size):
                group = paths[first : first + options.batch_size]
                results = run_on_loaded(
                    group, lambda waveforms: self._transcribe(waveforms, options, lambda done: bar.advance(seconds, done))
                )
                yield from zip(group, results)
                bar.advance(files, len(group))

    def chat(self, conversation: list[dict], **generate_options: Any) -> str:
        """The model's answer to a conversation of several turns and audio clips (Qwen-Audio-Chat style).

        `conversation`: {"role": "system" | "user" | "assistant", "content": str | parts} messages, ending with a
        user message; parts are {"type": "audio", "audio": path or 16 kHz waveform} and {"type": "text", "text": ...}.
        The clips are numbered "Audio 1", "Audio 2", ... across the conversation; each must fit one encoder window.
        `generate_options` go to `generate` (e.g. max_new_tokens, do_sample, temperature).
        """
        processor = self.processor
        messages, clips = conversation_messages(conversation, processor.config.system_prompt)
        if not clips:
            raise ValueError("the conversation holds no audio clip")
        waveforms = [_clip(clip, f"audio {number}", processor.max_seconds) for number, clip in enumerate(clips, 1)]
        features, feature_lengths = processor.featurize(waveforms, self.model.device)
        prompt = processor.encode_messages(messages, processor.audio_token_counts(feature_lengths))
        batch = processor.collate([prompt], padding_side="left")
        generate_options.setdefault("max_new_tokens", CHAT_MAX_NEW_TOKENS)
        tokens = self.model.generate(**batch, input_features=features, feature_lengths=feature_lengths,
                                     **generate_options)
        return processor.tokenizer.decode(tokens[0], skip_special_tokens=True).strip()

    def _resolve(self, overrides: dict[str, Any]) -> TranscriptionOptions:
        options = dataclasses.replace(self.options, **overrides)
        encoder_seconds = self.processor.max_seconds
        if options.max_window_seconds is not None and not 0 < options.max_window_seconds <= encoder_seconds:
            raise ValueError(f"max_window_seconds must be in (0, {encoder_seconds:g}], the encoder's window")
        if not options.temperatures:
            raise ValueError("temperatures must hold at least one temperature (0 for greedy)")
        if options.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {options.batch_size}")
        if options.ctc_candidates < 0:
            raise ValueError(f"ctc_candidates must be 0 (off) or more, got {options.ctc_candidates}")
        needs_aligner = {"word timestamps": options.word_timestamps, "ctc_candidates": options.ctc_candidates > 0}
        for feature in (name for name, asked in needs_aligner.items() if asked):
            if self._aligner is None:
                raise ValueError(
                    f"{feature} need a word aligner trained for this model, and {self.model.directory or 'it'} has "
                    "none (see audiograft.inference.alignment)"
                )
        if any(needs_aligner.values()) and self._aligner.frame_seconds != self.model.encoder.frame_seconds:
            raise ValueError(
                f"the word aligner of {self.model.directory or 'this model'} was trained on "
                f"{self._aligner.frame_seconds * 1000:g} ms encoder frames, and this encoder gives "
                f"{self.model.encoder.frame_seconds * 1000:g} ms frames: train it again for this model"
            )
        return options

    def _transcribe(
        self, waveforms: list[np.ndarray], options: TranscriptionOptions, advance: Callable[[float], None] | None = None
    ) -> list[Transcript]:
        windows = [
            _Window(clip, span) for clip, waveform in enumerate(waveforms) for span in self._plan(waveform, options)
        ]
        by_length = sorted(windows, key=lambda w: w.span.seconds)
        for first in range(0, len(by_length), options.batch_size):
            batch = by_length[first : first + options.batch_size]
            self._decode(batch, [waveforms[w.clip][w.span.start : w.span.end] for w in batch], options)
            if advance is not None:
                advance(sum(w.span.seconds for w in batch))
        return [
            stitch([(w.span, w.words) for w in windows if w.clip == clip], waveform.size / SAMPLE_RATE)
            for clip, waveform in enumerate(waveforms)
        ]

    def _plan(self, waveform: np.ndarray, options: TranscriptionOptions) -> list[Span]:
        probabilities = self._speech.probabilities(waveform)
        regions = speech_regions(
            probabilities, waveform.size, options.speech_threshold, options.min_speech_seconds,
            options.min_silence_seconds,
        )
        max_seconds = options.max_window_seconds or self.processor.max_seconds
        split_pause = None if options.split_pause_seconds is None else int(options.split_pause_seconds * SAMPLE_RATE)
        return plan_windows(
            regions, probabilities, waveform.size, int(max_seconds * SAMPLE_RATE),
            int(options.speech_pad_seconds * SAMPLE_RATE), split_pause, int(options.min_split_seconds * SAMPLE_RATE),
        )

    def _decode(self, windows: Sequence[_Window], clips: list[np.ndarray], options: TranscriptionOptions) -> None:
        """Fills each window's words: decoded with fallback, scored, and timed when asked."""
        model = self.model
        inputs = self.processor(clips, options.task, feature_device=model.device)
        frames, frame_lengths = model.encode_audio(inputs.pop("input_features"), inputs.pop("feature_lengths"))
        budgets = [options.max_new_tokens or answer_token_budget(clip.size / SAMPLE_RATE, options.max_tokens_per_second)
                   for clip in clips]
        answers: list[_Answer | None] = [None] * len(clips)
        pending = list(range(len(clips)))
        for temperature in options.temperatures:
            rows = torch.tensor(pending)
            attempt = self._generate(
                {name: value[rows] for name, value in inputs.items()},
                (frames[rows.to(frames.device)], frame_lengths[rows.to(frame_lengths.device)]),
                [budgets[row] for row in pending],
                temperature,
                options,
            )
            for row, answer in zip(pending, attempt):
                # The greedy answer is kept for the last resort; any answer that does not fail replaces it.
                if answers[row] is None or not answer.failed:
                    answers[row] = answer
            pending = [row for row in pending if answers[row].failed]
            if not pending:
                break
            logger.info("%d window(s) looped or ran on at temperature %g", len(pending), temperature)
        # The aligner's head runs on the CPU; the frames go there only when it is asked for.
        uses_aligner = options.ctc_candidates > 0 or options.word_timestamps
        window_frames = [frames[row, : int(frame_lengths[row])].float().cpu() if uses_aligner else None
                         for row in range(len(clips))]
        if options.ctc_candidates:
            answers = self._letter_checked(answers, inputs, (frames, frame_lengths), budgets, window_frames, options)
        for row, (window, answer) in enumerate(zip(windows, answers)):
            if answer.failed:
                answer = answer.cut_after_loop(options)
            window.words = self._words(answer, window_frames[row], options)

    def _letter_checked(
        self,
        answers: list[_Answer],
        inputs: dict[str, torch.Tensor],
        encoded_audio: tuple[torch.Tensor, torch.Tensor],
        budgets: list[int],
        window_frames: list[torch.Tensor],
        options: TranscriptionOptions,
    ) -> list[_Answer]:
        """Each window's answer among its own and `ctc_candidates` sampled ones: the one that does not fail whose
        letters the word aligner's CTC head finds likeliest in the window's frames, a non-empty one where any is.

        The LLM writes fluent sentences it was trained on where the audio is unclear to it; the CTC head reads
        letters from the frames with no language model, so it tells those apart from what was said."""
        rows = torch.arange(len(answers)).repeat_interleave(options.ctc_candidates)
        frames, frame_lengths = encoded_audio
        sampled = self._generate(
            {name: value[rows] for name, value in inputs.items()},
            (frames[rows.to(frames.device)], frame_lengths[rows.to(frame_lengths.device)]),
            [budgets[row] for row in rows.tolist()],
            options.candidate_temperature,
            options,
        )
        chosen = []
        for row, answer in enumerate(answers):
            candidates = [answer] + sampled[row * options.ctc_candidates : (row + 1) * options.ctc_candidates]
            candidates = [c for c in candidates if not c.failed] or [answer]
            candidates = [c for c in candidates if c.words] or candidates
            scores = self._aligner.letter_nlls(window_frames[row], [c.words for c in candidates])
            chosen.append(candidates[scores.index(min(scores))])
        return chosen

    def _generate(
        self,
        inputs: dict[str, torch.Tensor],
        encoded_audio: tuple[torch.Tensor, torch.Tensor],
        budgets: list[int],
        temperature: float,
        options: TranscriptionOptions,
    ) -> list[_Answer]:
        model = self.model
        logprobs = _ChosenTokenLogprobs()
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        # generate samples from torch's global generator: seed a fork of it, so a sampled answer repeats with
        # options.seed and the caller's own random state is left where it was.
        on_cuda = model.device.type == "cuda"
        with torch.random.fork_rng(devices=[model.device] if on_cuda else []):
            torch.manual_seed(options.seed)
            new_tokens = model.generate(
                **inputs, encoded_audio=encoded_audio, max_new_tokens=max(budgets), static_cache=options.static_cache,
                logits_processor=LogitsProcessorList([logprobs]), **sampling,
            ).cpu()
        token_logprobs = logprobs.finish(new_tokens)
        stops = set(self.processor.stop_token_ids)
        answers = []
        for tokens, scores, budget in zip(new_tokens.tolist(), token_logprobs.tolist(), budgets):
            stop = next((i for i, token in enumerate(tokens) if token in stops), None)
            ran_on = stop is None or stop > budget
            length = min(len(tokens) if stop is None else stop, budget)
            answers.append(self._answer(tokens[:length], scores[:length], ran_on, options))
        return answers

    def _answer(self, tokens: list[int], logprobs: list[float], ran_on: bool, options: TranscriptionOptions) -> _Answer:
        scored = words_from_tokens(self.processor.tokenizer, tokens, logprobs)
        words, confidences = [word for word, _ in scored], [confidence for _, confidence in scored]
        looped = find_loop(words, options.loop_max_ngram, options.loop_min_repeats) is not None
        return _Answer(words, confidences, failed=ran_on or looped)

    def _words(self, answer: _Answer, frames: torch.Tensor | None, options: TranscriptionOptions) -> list[Word]:
        calibrate = self._calibrator or float
        confidences = [calibrate(raw) for raw in answer.raw_confidences]
        times: list[tuple[float | None, float | None]] = [(None, None)] * len(answer.words)
        if options.word_timestamps and answer.words:
            times = self._aligner.align(frames, answer.words)
        return [Word(word, start, end, confidence)
                for word, (start, end), confidence in zip(answer.words, times, confidences)]


def _clip(audio: str | Path | np.ndarray, name: str, max_seconds: float) -> np.ndarray:
    """A chat clip: a file or a waveform, no longer than one encoder window."""
    if not isinstance(audio, np.ndarray):
        return load_audio(audio, max_seconds=max_seconds)
    return checked_waveform(audio, name, max_seconds)


def _seconds_or_zero(path: Path) -> float:
    # Only for the progress bar's total: an unreadable file is reported when it is loaded.
    try:
        return soundfile.info(str(path)).duration
    except (soundfile.LibsndfileError, RuntimeError, TypeError, OSError):
        return 0.0
