"""TranscriptionOptions, apart from the Transcriber so that reading them (the CLI's defaults) loads no model code."""

from __future__ import annotations

import os
from dataclasses import dataclass

from audiograft.inference.guards import LOOP_MAX_NGRAM, LOOP_MIN_REPEATS

# CPU threads for torch on the CPU: half the cores this process may use, at most 4 (CTranslate2's, so
# faster-whisper's, default). torch's own default, one per core, gains little on a graft's small matmuls and
# collapses when the cores are busy: the built-in model took 1.9 s on an 11 s clip with one thread on a shared
# 2-core machine, 34-111 s with two. The other half is left to audio decoding, voice activity and other processes.
_USABLE_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
DEFAULT_CPU_THREADS = max(1, min(4, _USABLE_CORES // 2))


@dataclass
class TranscriptionOptions:
    """Every setting of the pipeline in one place; `Transcriber.transcribe(..., **overrides)` replaces any of them."""

    task: str | None = None  # any instruction; None: the model's own transcription instruction
    batch_size: int = 8  # windows decoded together, across clips
    word_timestamps: bool = False  # needs a model with a word aligner
    # Windows: the defaults suit the built-in model, trained on single sentences of up to 14 s, which drops
    # sentences when it hears several at once (benchmarks/RESULTS.md). A graft trained on long audio hears best
    # with max_window_seconds=None (the encoder's whole 30 s) and split_pause_seconds=None (windows filled).
    max_window_seconds: float | None = 15.0  # None: the encoder's window
    split_pause_seconds: float | None = 0.1  # a pause this long ends a window ...
    min_split_seconds: float = 1.5  # ... once the window is this long (a lone word or two is misheard)
    speech_pad_seconds: float = 0.4  # silence kept around the speech of a window, when there is that much
    speech_threshold: float = 0.5  # Silero speech probability that opens a speech region
    min_speech_seconds: float = 0.25  # shorter bursts are not speech
    min_silence_seconds: float = 0.1  # shorter gaps do not end a speech region
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # 0: greedy; each failure moves to the next
    # Letter-checked decoding (needs a word aligner): this many more answers are sampled per window at
    # candidate_temperature, and the one whose letters the aligner's CTC head finds likeliest in the audio is kept.
    # Each candidate costs about one more decoding of the window. 0: off.
    ctc_candidates: int = 0
    candidate_temperature: float = 0.7
    # Sampled answers (the fallback's temperatures above 0, the letter-checked candidates) are drawn from this seed:
    # the same audio and options give the same transcript, run after run.
    seed: int = 0
    loop_max_ngram: int = LOOP_MAX_NGRAM
    loop_min_repeats: int = LOOP_MIN_REPEATS
    max_tokens_per_second: float = 8.0  # answer bound per second of window; speech needs about 3
    max_new_tokens: int | None = None  # a fixed bound instead (answers to a --task need not scale with audio)
    # Decode into a preallocated KV cache; on a GPU, transformers then compiles the decode step into CUDA graphs.
    # Each new batch shape compiles once (about 30 s for a 7B LLM on an H200), so it pays off on long jobs and servers.
    static_cache: bool = False
