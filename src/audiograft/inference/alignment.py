"""Word timestamps and calibrated word confidences, without the Whisper decoder.

Timestamps: `WordAligner` is a small head on the frozen encoder's frames (20 ms for Whisper, 40 ms for Qwen2-Audio). It is trained with CTC over
letters (which letters sound where) and, where the corpus has exact word timings, with per-frame word-start and
word-end targets (where a word's edges are). To time the words an LLM wrote, the letters are force-aligned to
the frames (CTC Viterbi), which says in which frames each word's letters sound; the end of one word and the start
of the next are then put where the edge outputs are most confident in the gap between their letters. Words with
no letters ("25", "&") are spread over the gap around them.

Confidence: `words_from_tokens` groups generated tokens into words and scores each word by the product of its
tokens' probabilities; `ConfidenceCalibrator` maps that score to the probability that the word is right (Platt
scaling).

Both live in the model directory next to the graft, as safetensors and JSON.
"""

from __future__ import annotations

import json
import logging
import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

logger = logging.getLogger(__name__)

ALPHABET = "abcdefghijklmnopqrstuvwxyz'"  # CTC classes 1..27; class 0 is the blank
BLANK = 0
ALIGNER_WEIGHTS = "word_aligner.safetensors"
ALIGNER_CONFIG = "word_aligner.json"
CALIBRATOR_FILE = "confidence_calibrator.json"
LETTER_IDS = {letter: index + 1 for index, letter in enumerate(ALPHABET)}


def word_token_groups(tokenizer: Any, token_ids: Sequence[int]) -> list[tuple[str, list[int]]]:
    """Generated tokens as whitespace-separated words: each word's text and the positions of its tokens.

    A word starts at a token that decodes with leading white space (byte-level BPE puts the space in front of
    the word) or after one that ends with it; special tokens (end of turn) belong to no word.
    """
    groups: list[list[int]] = [[]]
    has_text = follows_space = False
    for position, token in enumerate(token_ids):
        piece = tokenizer.decode([token], skip_special_tokens=True)
        if not piece:
            continue
        # A lone space token (" " before digits) opens a word that the next tokens fill.
        if has_text and (follows_space or piece[0].isspace()):
            groups.append([])
            has_text = False
        groups[-1].append(position)
        has_text = has_text or not piece.isspace()
        follows_space = piece[-1].isspace()
    words = [
        (tokenizer.decode([token_ids[p] for p in positions], skip_special_tokens=True).strip(), positions)
        for positions in groups
    ]
    return [(text, positions) for text, positions in words if text]


def words_from_tokens(
    tokenizer: Any, token_ids: Sequence[int], token_logprobs: Sequence[float]
) -> list[tuple[str, float]]:
    """Each generated word with its raw confidence: the product of its tokens' probabilities.

    The product ranks right words above wrong ones better than the least probable token or the geometric mean
    (measured in benchmarks/RESULTS.md), and it is the probability the LLM gave the whole word.
    """
    return [
        (text, math.exp(sum(token_logprobs[p] for p in positions)))
        for text, positions in word_token_groups(tokenizer, token_ids)
    ]


@dataclass
class ConfidenceCalibrator:
    """Platt scaling: calibrated = sigmoid(slope * logit(raw) + intercept), fitted on judged held-out words."""

    slope: float
    intercept: float

    @classmethod
    def fit(cls, raw: Sequence[float], correct: Sequence[bool]) -> ConfidenceCalibrator:
        """Maximum-likelihood slope and intercept; needs both right and wrong words."""
        labels = torch.tensor([float(c) for c in correct], dtype=torch.float64)
        if len(raw) != len(labels) or not 0 < labels.sum() < len(labels):
            raise ValueError("fitting a calibrator needs as many flags as scores, with both right and wrong words")
        scores = _logit(torch.tensor(list(raw), dtype=torch.float64))
        params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([params], max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(params[0] * scores + params[1], labels)
            loss.backward()
            return loss

        optimizer.step(closure)
        return cls(*params.detach().tolist())

    def __call__(self, raw: float) -> float:
        return float(torch.sigmoid(self.slope * _logit(torch.tensor(float(raw), dtype=torch.float64)) + self.intercept))

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / CALIBRATOR_FILE
        path.write_text(json.dumps({"method": "platt", "slope": self.slope, "intercept": self.intercept}, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> ConfidenceCalibrator | None:
        path = Path(model_dir) / CALIBRATOR_FILE
        if not path.is_file():
            return None
        values = json.loads(path.read_text())
        return cls(values["slope"], values["intercept"])


def _logit(probability: torch.Tensor) -> torch.Tensor:
    # A word whose tokens all have probability 1.0 in float32 still gets a finite score.
    return torch.logit(probability.clamp(1e-6, 1 - 1e-6))


def spoken_letters(word: str) -> str:
    """The letters of a word the aligner can place: lower case, accents dropped, inner apostrophes kept."""
    plain = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in plain if c in LETTER_IDS).strip("'")


def letter_targets(words: Iterable[str]) -> list[int]:
    """The CTC head's class ids of the words' spoken letters, in order, with no separator between words."""
    return [LETTER_IDS[c] for word in words for c in spoken_letters(word)]


def forced_align(log_probs: np.ndarray, targets: Sequence[int], blank: int = BLANK) -> np.ndarray | None:
    """The most likely CTC path that spells `targets` in (frames, classes) log-probabilities.

    Returns, for each frame, its state in the blank-interleaved targets (odd states are targets[(state - 1) // 2]);
    None when the frames are too few to spell the targets. Hand-written: torchaudio, whose forced_align this
    follows, is not installed here and dropped that function in recent versions.
    """
    frames = log_probs.shape[0]
    states = np.full(2 * len(targets) + 1, blank)
    states[1::2] = targets
    emissions = log_probs[:, states]
    # A step may jump over a blank unless it would merge two equal letters.
    may_skip = np.zeros(len(states), dtype=bool)
    may_skip[2:] = (states[2:] != blank) & (states[2:] != states[:-2])
    score = np.full(len(states), -np.inf)
    score[:2] = emissions[0, :2]
    back = np.zeros((frames, len(states)), dtype=np.int8)
    for frame in range(1, frames):
        step = np.concatenate([[-np.inf], score[:-1]])
        skip = np.where(may_skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        candidates = np.stack([score, step, skip])
        back[frame] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + emissions[frame]
    last = len(states) - 1
    state = last if len(states) == 1 or score[last] >= score[last - 1] else last - 1
    if not np.isfinite(score[state]):
        return None
    path = np.empty(frames, dtype=np.int64)
    for frame in range(frames - 1, -1, -1):
        path[frame] = state
        state -= int(back[frame, state])
    return path


class WordAligner(nn.Module):
    """Letters (CTC) and word edges (starts here / ends here) per encoder frame, from residual 1-D convolutions.

    Convolutions, not an LSTM: the encoder frames already see the whole window, and on CPU a BiLSTM head took
    twice as long per epoch, stepping through the frames one by one.
    """

    def __init__(self, input_size: int, hidden_size: int = 192, layers: int = 3, kernel_size: int = 3,
                 dropout: float = 0.1, edge_supervised: bool = True, frame_seconds: float = 0.02):
        """frame_seconds: the duration of one encoder frame it is trained on (`AudioEncoder.frame_seconds`);
        word_aligner.json files written before it was recorded were all trained on Whisper's 20 ms frames."""
        super().__init__()
        self.config = {"input_size": input_size, "hidden_size": hidden_size, "layers": layers,
                       "kernel_size": kernel_size, "dropout": dropout, "edge_supervised": edge_supervised,
                       "frame_seconds": frame_seconds}
        self.edge_supervised = edge_supervised
        self.frame_seconds = frame_seconds
        self.inputs = nn.Sequential(nn.LayerNorm(input_size), nn.Linear(input_size, hidden_size))
        self.convs = nn.ModuleList(
            nn.Conv1d(hidden_size, hidden_size, kernel_size, padding=kernel_size // 2) for _ in range(layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.letters = nn.Linear(hidden_size, len(ALPHABET) + 1)
        self.edges = nn.Linear(hidden_size, 2)  # logits: a word starts at this frame; a word ends after it

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> WordAligner | None:
        directory = Path(model_dir)
        if not (directory / ALIGNER_CONFIG).is_file():
            return None
        aligner = cls(**json.loads((directory / ALIGNER_CONFIG).read_text()))
        state = load_file(directory / ALIGNER_WEIGHTS)
        aligner.load_state_dict({k: v.float() for k, v in state.items()})
        return aligner.eval()

    def save_pretrained(self, model_dir: str | Path) -> Path:
        """fp16 weights (half the size; the figures in benchmarks/RESULTS.md are of the saved aligner) and its
        constructor arguments."""
        directory = Path(model_dir)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.half().contiguous() for k, v in self.state_dict().items()}, directory / ALIGNER_WEIGHTS)
        (directory / ALIGNER_CONFIG).write_text(json.dumps(self.config, indent=2) + "\n")
        return directory

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (batch, T, d) -> letter log-probabilities (batch, T, classes) and edge logits (batch, T, 2)."""
        # Padding is zeroed before every convolution, so a clip's outputs do not depend on its batch.
        valid = (torch.arange(frames.shape[1], device=frames.device)[None, :] < lengths.to(frames.device)[:, None])
        valid = valid[:, None, :].to(self.letters.weight.dtype)
        hidden = self.inputs(frames.to(self.letters.weight.dtype)).transpose(1, 2)
        for conv in self.convs:
            hidden = hidden + self.dropout(nn.functional.gelu(conv(hidden * valid)))
        hidden = hidden.transpose(1, 2)
        return self.letters(hidden).log_softmax(-1), self.edges(hidden)

    @torch.inference_mode()
    def letter_nlls(self, frames: torch.Tensor, hypotheses: Sequence[list[str]]) -> list[float]:
        """How unlikely each hypothesis's letters are in these frames (T, d) of one window: the CTC negative
        log-likelihood over all alignments, in nats. The head runs once for all of them (they share the frames)."""
        letter_log_probs, _ = self(frames[None], torch.tensor([frames.shape[0]]))
        scores = []
        for words in hypotheses:
            targets = letter_targets(words)
            if not targets:
                scores.append(float(-letter_log_probs[0, :, BLANK].sum()))
                continue
            scores.append(float(nn.functional.ctc_loss(
                letter_log_probs.transpose(0, 1), torch.tensor([targets]), torch.tensor([frames.shape[0]]),
                torch.tensor([len(targets)]), blank=BLANK, reduction="sum", zero_infinity=True,
            )))
        return scores

    @torch.inference_mode()
    def align(self, frames: torch.Tensor, words: list[str]) -> list[tuple[float, float]]:
        """(start, end) seconds from the window start for every word, in order; `frames`: (T, d) of one window."""
        n_frames = frames.shape[0]
        if not words:
            return []
        letters = [spoken_letters(word) for word in words]
        letter_log_probs, edge_logits = self(frames[None], torch.tensor([n_frames]))
        targets = [LETTER_IDS[c] for word in letters for c in word]  # the letters per word are needed below too
        path = forced_align(letter_log_probs[0].double().numpy(), targets) if targets else None
        if path is None:
            return _spread([len(w) for w in words], 0.0, n_frames * self.frame_seconds)
        owner = np.array([index for index, word in enumerate(letters) for _ in word])
        voiced = path % 2 == 1
        word_of_frame = owner[(path[voiced] - 1) // 2]
        frames_of = {w: np.flatnonzero(voiced)[word_of_frame == w] for w in set(word_of_frame.tolist())}
        # Every placed word's letters occupy at least one frame of the path.
        first = {w: int(f[0]) for w, f in frames_of.items()}
        last = {w: int(f[-1]) for w, f in frames_of.items()}
        edge_scores = nn.functional.logsigmoid(edge_logits[0].double()).numpy()
        return _word_times(words, first, last, edge_scores if self.edge_supervised else None, n_frames,
                           self.frame_seconds)


def _word_times(
    words: list[str], first: dict[int, int], last: dict[int, int], edge_scores: np.ndarray | None, n_frames: int,
    frame_seconds: float,
) -> list[tuple[float, float]]:
    """Start and end frames of the placed words, refined by the edge scores, then times for the unplaced words."""
    placed = sorted(first)
    start = {w: first[w] for w in placed}
    end = {w: last[w] for w in placed}  # inclusive: the word ends after this frame
    if edge_scores is not None:
        # Edges are looked for only in the gaps between words' letters: a search reaching into a word finds the
        # inner seams of compounds ("seven|fold") as word edges (benchmarks/RESULTS.md).
        if placed[0] == 0:
            start[0] = int(np.argmax(edge_scores[: first[0] + 1, 0]))
        if placed[-1] == len(words) - 1:
            end[placed[-1]] = last[placed[-1]] + int(np.argmax(edge_scores[last[placed[-1]] :, 1]))
        for before, after in pairwise(placed):
            if after == before + 1:
                end[before], start[after] = _best_gap(edge_scores, last[before], first[after])
    times: list[tuple[float, float] | None] = [None] * len(words)
    for w in placed:
        times[w] = (start[w] * frame_seconds, (end[w] + 1) * frame_seconds)
    # Unplaced words share the stretch between the placed words around them, by their length in characters.
    bounds = [(-1, 0.0), *((w, times[w][1]) for w in placed), (len(words), n_frames * frame_seconds)]
    for (before, gap_start), (after, _) in pairwise(bounds):
        if after - before > 1:
            gap_end = times[after][0] if after < len(words) else n_frames * frame_seconds
            times[before + 1 : after] = _spread([len(words[w]) for w in range(before + 1, after)], gap_start, gap_end)
    return times


def _best_gap(edge_scores: np.ndarray, earliest_end: int, latest_start: int) -> tuple[int, int]:
    """The end frame e and start frame s, earliest_end <= e < s <= latest_start, with the highest edge scores.

    earliest_end is the last letter frame of one word and latest_start the first of the next, so both exist."""
    ends = np.arange(earliest_end, latest_start)
    # For each end frame, the best start strictly after it: a running maximum from the right.
    start_scores = edge_scores[earliest_end + 1 : latest_start + 1, 0]
    best_after = np.maximum.accumulate(start_scores[::-1])[::-1]
    end = int(ends[np.argmax(edge_scores[ends, 1] + best_after)])
    start = end + 1 + int(np.argmax(edge_scores[end + 1 : latest_start + 1, 0]))
    return end, start


def _spread(weights: list[int], start: float, end: float) -> list[tuple[float, float]]:
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(np.maximum(weights, 1))]) / max(sum(weights), 1)
    edges[-1] = end
    return [(float(a), float(b)) for a, b in pairwise(edges)]
