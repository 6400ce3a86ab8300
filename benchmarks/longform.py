"""Long-form against short-form WER: held-out utterances joined by pauses into one recording, transcribed whole by
the Transcriber, and the same utterances transcribed one by one.

    nice python benchmarks/longform.py /work/corpus/test.jsonl --minutes 10 --json longform.json

Pauses are drawn uniformly from [--min-pause, --max-pause] seconds; with a maximum below the VAD's minimum silence
(0.1 s) the recording is continuous speech and windows must be cut inside it. Both WERs are corpus WERs on Whisper-
normalised text (audiograft.evaluation.metrics.score).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import soundfile

from audiograft.audio.io import SAMPLE_RATE, load_audio
from audiograft.evaluation.metrics import Hypothesis, score
from audiograft.inference.transcriber import Transcriber
from audiograft.manifest import read_manifest


def build_recording(manifest: Path, minutes: float, min_pause: float, max_pause: float, seed: int):
    """Randomly chosen utterances and the recording that joins them with random pauses."""
    rng = random.Random(seed)
    utterances = read_manifest(manifest)
    rng.shuffle(utterances)
    chosen, clips, pieces, total = [], [], [], 0.0
    for utterance in utterances:
        if total >= minutes * 60:
            break
        clip = load_audio(utterance.audio)
        pause = np.zeros(int(rng.uniform(min_pause, max_pause) * SAMPLE_RATE), dtype=np.float32)
        chosen.append(utterance)
        clips.append(clip)
        pieces += [clip, pause]
        total += (clip.size + pause.size) / SAMPLE_RATE
    return chosen, clips, np.concatenate(pieces[:-1])


def none_or_float(value: str) -> float | None:
    return None if value == "none" else float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--model", default="default")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--min-pause", type=float, default=0.3)
    parser.add_argument("--max-pause", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-window-seconds", type=none_or_float, default=argparse.SUPPRESS,
                        help="TranscriptionOptions.max_window_seconds ('none': the encoder's window)")
    parser.add_argument("--split-pause-seconds", type=none_or_float, default=argparse.SUPPRESS,
                        help="TranscriptionOptions.split_pause_seconds ('none': fill windows)")
    parser.add_argument("--min-split-seconds", type=float, default=argparse.SUPPRESS,
                        help="TranscriptionOptions.min_split_seconds")
    parser.add_argument("--skip-short", action="store_true", help="Long-form only.")
    parser.add_argument("--save-audio", type=Path, help="Write the recording here (FLAC).")
    parser.add_argument("--json", type=Path, help="Write figures and both transcripts here.")
    args = parser.parse_args()

    utterances, clips, recording = build_recording(args.manifest, args.minutes, args.min_pause, args.max_pause,
                                                   args.seed)
    if args.save_audio:
        soundfile.write(args.save_audio, recording, SAMPLE_RATE)
    transcriber = Transcriber(args.model)
    tuned = ("batch_size", "max_window_seconds", "split_pause_seconds", "min_split_seconds")
    options = {name: getattr(args, name) for name in tuned if hasattr(args, name)}
    reference = " ".join(u.text for u in utterances)
    figures: dict = {"utterances": len(utterances), "recording_seconds": recording.size / SAMPLE_RATE,
                     "speech_seconds": sum(c.size for c in clips) / SAMPLE_RATE, "args": vars(args) | {
                         "manifest": str(args.manifest), "save_audio": str(args.save_audio), "json": str(args.json)}}

    start = time.perf_counter()
    long_form = transcriber.transcribe(recording, **options)
    long_seconds = time.perf_counter() - start
    long_result = score([Hypothesis("recording", reference, long_form.text, recording.size / SAMPLE_RATE)],
                        wall_seconds=long_seconds)
    windows = [s.end - s.start for s in long_form.segments]
    figures["long_form"] = {"wer": long_result.wer, "wall_seconds": long_seconds, "rtfx": long_result.rtfx,
                            "segments": len(windows), "window_seconds_mean": float(np.mean(windows)),
                            "window_seconds_max": float(np.max(windows)), "text": long_form.text}

    if not args.skip_short:
        start = time.perf_counter()
        short_form = transcriber.transcribe_batch(clips, **options)
        short_seconds = time.perf_counter() - start
        short_result = score(
            [Hypothesis(str(i), u.text, t.text, u.duration) for i, (u, t) in enumerate(zip(utterances, short_form))],
            wall_seconds=short_seconds,
        )
        figures["short_form"] = {"wer": short_result.wer, "wall_seconds": short_seconds, "rtfx": short_result.rtfx,
                                 "text": " ".join(t.text for t in short_form)}
        figures["relative_difference"] = long_result.wer / short_result.wer - 1
    summary = {k: v for k, v in figures.items() if k not in ("long_form", "short_form")}
    for form in ("long_form", "short_form"):
        if form in figures:
            summary[form] = {k: v for k, v in figures[form].items() if k != "text"}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
