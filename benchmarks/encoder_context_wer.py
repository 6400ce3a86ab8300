"""Dev WER and CPU RTFx of the default model for each encoder context: "trim" (the encoder runs on each window's own
length, the default) and "full" (every window padded to 30 s, as Whisper was trained).

    python benchmarks/encoder_context_wer.py [--manifest data/dev/dev.jsonl] [--repeats 3] \
        [--output benchmarks/cpu/encoder_context_wer.json]

The default model is loaded once per context (`Transcriber("default")`), with `encoder_context` set on its config
and its encoder after loading, and run through the same Transcriber (default options) on the same waveforms, decoded
once into memory, on 2 threads. Timing and scoring as in cpu_vs_faster_whisper.py (warm-up on one clip, median of
--repeats passes, corpus WER/CER on Whisper-normalised text).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cpu_vs_faster_whisper import load_clips, measure, texts_of, write_report

from audiograft.inference.transcriber import Transcriber

CONTEXTS = ("trim", "full")


def default_transcriber(context: str) -> Transcriber:
    """The default model loaded as users get it (`Transcriber("default")`), then switched to `context`: the encoder
    reads its `context` at every call, and the config is kept in step."""
    transcriber = Transcriber("default")
    transcriber.model.config.encoder_context = context
    transcriber.model.encoder.context = context
    return transcriber


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=Path("data/dev/dev.jsonl"))
    parser.add_argument("--limit", type=int, help="Only the manifest's first N clips.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed passes per context; wall is their median.")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/cpu/encoder_context_wer.json"))
    args = parser.parse_args()

    utterances, waveforms = load_clips(args.manifest, args.limit)
    load_before = os.getloadavg()
    rows = []
    for context in CONTEXTS:
        transcribe = texts_of(default_transcriber(context))
        rows.append(measure(f"audiograft default, encoder_context={context}", transcribe, utterances, waveforms,
                            args.repeats, {"encoder_context": context}))
    load_after = os.getloadavg()

    write_report(rows, args, utterances, load_before, load_after)


if __name__ == "__main__":
    main()
