"""Word timestamps and word confidence of the default model (issue 6): the measurements in benchmarks/RESULTS.md.

Steps, each reading what the previous ones wrote under --work (CPU; whisper-base frames are cached once):
    python benchmarks/alignment.py frames    # encoder frames: timed train utterances, test split, dev set
    python benchmarks/alignment.py options   # aligner options trained on train voices, compared on held-out voices
    python benchmarks/alignment.py decode    # greedy transcripts of test + dev with each token's log-probability
    python benchmarks/alignment.py report --aligner /tmp/align_work/aligners/ctc+edges --ship src/audiograft/presets/default_model

`report` compares confidence scores and calibrators (fitted on half of the test speakers, scored on the other
half and on the dev set), times the LLM's words and the reference words, and writes the chosen aligner and
calibrator into --ship when given. It also writes the held-out half and the timed test utterances as manifests
for `audiograft eval`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from audiograft.audio.io import load_audio
from audiograft.evaluation.metrics import (
    Hypothesis,
    TimestampErrors,
    expected_calibration_error,
    judged_words,
    score,
)
from audiograft.inference.alignment import (
    ConfidenceCalibrator,
    WordAligner,
    word_token_groups,
)
from audiograft.manifest import Utterance, Word, read_manifest, write_manifest
from audiograft.modeling.model import GraftModel
from audiograft.modeling.processor import GraftProcessor
from audiograft.training.aligner import (
    encoder_frames,
    make_example,
    timing_errors,
    train_aligner,
)
from audiograft.training.encoder_cache import EncoderCache

logger = logging.getLogger("benchmarks.alignment")

CORPUS = Path("/work/corpus")
DEV = Path("/tmp/devset/dev.jsonl")
VALIDATION_EVERY = 9  # every 9th espeak training voice is held out to choose between aligner options

OPTIONS = {
    "ctc": {"edge_weight": 0.0},
    "ctc+edges": {"edge_weight": 1.0},
    "ctc+edges, seed 1": {"edge_weight": 1.0, "seed": 1},  # how much a seed alone moves the figures
    "ctc+edges, 384 wide": {"edge_weight": 1.0, "hidden_size": 384},
}

AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "min": lambda logprobs: float(np.exp(logprobs.min())),
    "product": lambda logprobs: float(np.exp(logprobs.sum())),
    "geometric mean": lambda logprobs: float(np.exp(logprobs.mean())),
}


def splits() -> dict[str, list[Utterance]]:
    timed_train = [u for u in read_manifest(CORPUS / "train.jsonl") if u.words]
    espeak_voices = sorted({u.speaker for u in timed_train if u.speaker.startswith("espeak")})
    held_out = set(espeak_voices[::VALIDATION_EVERY])
    test = read_manifest(CORPUS / "test.jsonl")
    return {
        "train": [u for u in timed_train if u.speaker not in held_out],
        "validation": [u for u in timed_train if u.speaker in held_out],
        "test": test,
        "test-timed": [u for u in test if u.words],
        # Decoding all 1,000 takes too long on the shared CPU: every other utterance, plus every timed one.
        "test-decoded": [u for i, u in enumerate(test) if u.words or i % 2 == 0],
        "dev": read_manifest(DEV),
        "dev-timed": [u for u in read_manifest(DEV) if u.words],
    }


def frame_cache(args) -> EncoderCache:
    return EncoderCache.of_saved_graft(args.cache)


def step_frames(args) -> None:
    cache = frame_cache(args)
    for name, utterances in splits().items():
        start = time.perf_counter()
        clips = encoder_frames(cache, utterances)
        logger.info("%s: %d of %d clips encoded in %.0f s", name, len(clips), len(utterances), time.perf_counter() - start)


def step_options(args) -> None:
    """Train each option not trained yet under --work/aligners, then score every option on held-out voices."""
    data = splits()
    cache = frame_cache(args)
    evaluation = {name: encoder_frames(cache, data[name]) for name in ("validation", "test-timed", "dev-timed")}
    train = None
    for option in args.options:
        directory = args.work / "aligners" / option
        result_path = directory / "errors.json"
        aligner = WordAligner.from_pretrained(directory)
        result = json.loads(result_path.read_text()) if result_path.is_file() else {}
        if aligner is None:
            frame_seconds = cache.encoder.frame_seconds
            train = train or [make_example(frames, u.text, u.words, frame_seconds)
                              for u, frames in encoder_frames(cache, data["train"])]
            start = time.perf_counter()
            aligner = train_aligner(train, frame_seconds=frame_seconds, epochs=args.epochs, **OPTIONS[option])
            aligner.save_pretrained(directory)
            result = {"epochs": args.epochs, "train_seconds": round(time.perf_counter() - start),
                      "parameters": sum(p.numel() for p in aligner.parameters())}
        for name, clips in evaluation.items():
            result[name] = timing_errors(aligner, clips).to_dict()
        result_path.write_text(json.dumps(result, indent=2))
        logger.info("%s: %s", option, json.dumps(result))


@torch.inference_mode()
def step_decode(args) -> None:
    """Greedy transcripts, then each generated token's log-probability from a teacher-forced forward pass."""
    data = splits()
    model = GraftModel.from_pretrained("default")
    stops = set(model.processor.stop_token_ids)
    with (args.work / "decodes.jsonl").open("w") as out:
        for name in ("test-decoded", "dev"):
            utterances = data[name]
            order = sorted(range(len(utterances)), key=lambda i: utterances[i].duration)
            for first in range(0, len(order), args.batch_size):
                indices = order[first : first + args.batch_size]
                batch = model.processor([load_audio(utterances[i].audio) for i in indices])
                seconds = float(batch["feature_lengths"].max()) / model.encoder.feature_rate
                generated = model.generate(**batch, max_new_tokens=int(16 + 8 * seconds))
                logprobs = _teacher_forced_logprobs(model, batch, generated)
                for row, index in enumerate(indices):
                    ids = generated[row].tolist()
                    length = next((k + 1 for k, token in enumerate(ids) if token in stops), len(ids))
                    record = {"audio": str(utterances[index].audio), "token_ids": ids[:length],
                              "token_logprobs": logprobs[row, :length].tolist()}
                    out.write(json.dumps(record) + "\n")
                logger.info("%s: %d of %d decoded", name, first + len(indices), len(order))


def _teacher_forced_logprobs(model: GraftModel, batch: dict, generated: torch.Tensor) -> torch.Tensor:
    input_ids = torch.cat([batch["input_ids"], generated], dim=1)
    attention_mask = torch.cat([batch["attention_mask"], torch.ones_like(generated)], dim=1)
    audio_mask = torch.cat([batch["audio_mask"], torch.zeros_like(generated, dtype=torch.bool)], dim=1)
    logits = model(input_ids, attention_mask, audio_mask, batch["input_features"], batch["feature_lengths"]).logits
    predicted = logits[:, batch["input_ids"].shape[1] - 1 : -1].float().log_softmax(-1)
    return predicted.gather(-1, generated[..., None])[..., 0]


def _read_decodes(work: Path, tokenizer) -> dict[str, dict]:
    """Decoded words by audio path: each word's text and its tokens' log-probabilities."""
    decodes = {}
    for line in (work / "decodes.jsonl").open():
        record = json.loads(line)
        logprobs = np.asarray(record["token_logprobs"])
        record["words"] = [(text, logprobs[positions]) for text, positions in word_token_groups(tokenizer, record["token_ids"])]
        record["text"] = " ".join(text for text, _ in record["words"])
        decodes[record["audio"]] = record
    return decodes


def _hypotheses(clips, decodes, confidence, aligner: WordAligner | None = None) -> list[Hypothesis]:
    """Scored hypotheses for (utterance, frames or None) pairs: decoded words, aligned when frames are given."""
    hypotheses = []
    for index, (utterance, frames) in enumerate(clips):
        record = decodes[str(utterance.audio)]
        texts = [text for text, _ in record["words"]]
        spans = aligner.align(frames, texts) if aligner is not None else [(None, None)] * len(texts)
        words = [Word(text, start, end, confidence(logprobs)) for (text, logprobs), (start, end) in zip(record["words"], spans)]
        hypotheses.append(Hypothesis(str(index), utterance.text, record["text"], utterance.duration,
                                     words=words, reference_words=utterance.words))
    return hypotheses


def _judged(hypotheses: list[Hypothesis]) -> tuple[np.ndarray, np.ndarray]:
    judged = judged_words(score(hypotheses, wall_seconds=1.0).utterances)
    return np.array([w.confidence for w in judged]), np.array([w.correct for w in judged])


def _isotonic(raw: np.ndarray, correct: np.ndarray) -> Callable[[float], float]:
    # The comparison only, not the shipped calibrator: scipy is not one of audiograft's dependencies.
    from scipy.optimize import isotonic_regression

    order = np.argsort(raw)
    fitted = isotonic_regression(correct[order].astype(float)).x
    return lambda value: float(np.interp(value, raw[order], fitted))


def step_report(args) -> None:
    data = splits()
    decodes = _read_decodes(args.work, GraftProcessor.from_pretrained("default").tokenizer)
    test = data["test-decoded"]
    fit_speakers = set(sorted({u.speaker for u in test})[::2])
    sets = {
        "fit": [(u, None) for u in test if u.speaker in fit_speakers],
        "held-out": [(u, None) for u in test if u.speaker not in fit_speakers],
        "dev": [(u, None) for u in data["dev"]],
    }
    # The same sets as manifests, for `audiograft eval` (which runs the Transcriber with these companions).
    write_manifest(args.work / "test-held-out.jsonl", [u for u, _ in sets["held-out"]])
    write_manifest(args.work / "test-timed.jsonl", data["test-timed"])
    report: dict = {"utterances": {name: len(clips) for name, clips in sets.items()},
                    "speakers": {name: len({u.speaker for u, _ in clips}) for name, clips in sets.items()}}

    # Confidence: which aggregate of token probabilities and which calibrator, fitted on "fit", scored elsewhere.
    calibrators = {}
    report["confidence"] = {}
    for aggregate, reduce in AGGREGATES.items():
        judged = {name: _judged(_hypotheses(clips, decodes, reduce)) for name, clips in sets.items()}
        report.setdefault("judged_words", {name: len(raw) for name, (raw, _) in judged.items()})
        calibrators[aggregate] = ConfidenceCalibrator.fit(*judged["fit"])
        methods = {"raw": float, "platt": calibrators[aggregate], "isotonic": _isotonic(*judged["fit"])}
        for method, calibrate in methods.items():
            row = {f"ece_{name}": expected_calibration_error([calibrate(v) for v in raw], correct)
                   for name, (raw, correct) in judged.items()}
            row |= {f"auroc_{name}": _auroc(raw, correct) for name, (raw, correct) in judged.items()}
            report["confidence"][f"{aggregate} / {method}"] = row

    # The words the LLM wrote, timed by the aligner and scored by evaluation.score, as `audiograft eval` scores them.
    aligner = WordAligner.from_pretrained(args.aligner)
    calibrator = calibrators[args.aggregate]
    cache = frame_cache(args)

    def confidence(logprobs: np.ndarray) -> float:
        return calibrator(AGGREGATES[args.aggregate](logprobs))

    for name in ("test-timed", "dev-timed"):
        clips = encoder_frames(cache, data[name])
        start = time.perf_counter()
        result = score(_hypotheses(clips, decodes, confidence, aligner), wall_seconds=1.0)
        seconds = time.perf_counter() - start
        exact = [u.timestamps for u in result.utterances if u.wer == 0 and u.timestamps is not None]
        report[f"llm_words_{name}"] = {
            "wer": result.wer,
            "timestamps": result.timestamps.to_dict(),
            "timestamps_of_utterances_without_errors": sum(exact, TimestampErrors()).to_dict(),
            "utterances_without_errors": len(exact),
            "align_seconds_per_clip": seconds / len(clips),
        }
        report[f"reference_words_{name}"] = timing_errors(aligner, clips).to_dict()
    # How far from 0 the ECE of a perfectly calibrated system would land on these few words, by chance alone.
    raw, _ = _judged(_hypotheses(sets["dev"], decodes, AGGREGATES[args.aggregate]))
    calibrated = np.array([calibrator(v) for v in raw])
    draws = np.random.default_rng(0).uniform(size=(1000, len(calibrated))) < calibrated
    report["dev_ece_if_perfectly_calibrated"] = float(np.mean([expected_calibration_error(calibrated, d) for d in draws]))
    (args.work / "report.json").write_text(json.dumps(report, indent=2))
    logger.info("%s", json.dumps(report, indent=2))
    if args.ship:
        aligner.save_pretrained(args.ship)
        calibrator.save(args.ship)
        logger.info("wrote the aligner and the %s calibrator to %s", args.aggregate, args.ship)


def _auroc(raw: np.ndarray, correct: np.ndarray) -> float:
    """How well the raw score ranks right words above wrong ones (calibration cannot change this)."""
    right, wrong = raw[correct], raw[~correct]
    if not len(right) or not len(wrong):
        return float("nan")
    return float((right[:, None] > wrong[None, :]).mean() + 0.5 * (right[:, None] == wrong[None, :]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["frames", "options", "decode", "report"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/align_work"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/align_encoder_cache"))
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--aligner", type=Path, help="the aligner to report on (a directory from `options`)")
    parser.add_argument("--aggregate", default="product", choices=list(AGGREGATES))
    parser.add_argument("--ship", type=Path, help="write the aligner and calibrator into this model directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    {"frames": step_frames, "options": step_options, "decode": step_decode, "report": step_report}[args.step](args)


if __name__ == "__main__":
    main()
