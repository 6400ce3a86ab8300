"""Decoding guards: what marks an answer as a loop, so that it is cut or decoded again."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import jiwer

LOOP_MAX_NGRAM = 4
LOOP_MIN_REPEATS = 4

# Loops are looked for before Whisper normalisation, which merges spelled-out numbers ("one one one" -> "111").
# Words are compared one by one, so that a loop found can be cut out of the original text.
# Built on first use: RemovePunctuation scans all of Unicode (about a second), which importing this module
# (the CLI's start-up, through TranscriptionOptions) should not pay.
@cache
def _loop_keys() -> jiwer.Compose:
    return jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.Strip()])


def loop_detected(text: str, max_ngram: int = LOOP_MAX_NGRAM, min_repeats: int = LOOP_MIN_REPEATS) -> bool:
    """True when some n-gram (n = 1..max_ngram) occurs at least `min_repeats` times back to back."""
    return find_loop(text.split(), max_ngram, min_repeats) is not None


def find_loop(words: Sequence[str], max_ngram: int = LOOP_MAX_NGRAM, min_repeats: int = LOOP_MIN_REPEATS) -> int | None:
    """Where a loop begins to repeat: the index just past the first copy of an n-gram (n = 1..max_ngram) that
    occurs at least `min_repeats` times back to back, or None. Case and punctuation are ignored."""
    # Hand-written: jiwer and the normaliser have no repeat finder. A run of keys[i] == keys[i + n] of length
    # (min_repeats - 1) * n is exactly an n-gram followed by min_repeats - 1 copies of itself.
    positions = [(index, key) for index, key in enumerate(_loop_keys()(list(words))) if key]
    keys = [key for _, key in positions]
    for n in range(1, max_ngram + 1):
        run = 0
        for i in range(len(keys) - n):
            run = run + 1 if keys[i] == keys[i + n] else 0
            if run >= (min_repeats - 1) * n:
                last_of_first_copy = i - run + n
                return positions[last_of_first_copy][0] + 1
    return None
