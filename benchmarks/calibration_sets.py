"""Which held-out speech to fit the confidence calibrator on: each candidate calibrator's ECE on every scored set.

    python benchmarks/calibration_sets.py --scored-with MODEL_A \
        --calibrators corpus=MODEL_A scrambled=MODEL_B union=MODEL_C \
        --results "real English dev"=en.json "synthetic test"=syn.json [--output calibration_sets.json]

Each result is an `audiograft eval --json` of one graft whose confidences went through MODEL_A's calibrator, or are
raw where MODEL_A has none; the candidates are the same graft's calibrators fitted by `audiograft calibrate` on
different sets. Platt scaling is affine in logit space, so the words are rescored exactly instead of transcribed
again: logit(raw) = (logit(calibrated) - intercept) / slope, then each candidate's own slope and intercept.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from audiograft.evaluation.metrics import expected_calibration_error
from audiograft.files import write_text_atomically
from audiograft.inference.alignment import ConfidenceCalibrator


def raw_confidence(calibrated: float, calibrator: ConfidenceCalibrator | None) -> float:
    """The confidence before `calibrator`; a model without one (None) gave its raw confidences."""
    if calibrator is None:
        return calibrated
    logit = torch.logit(torch.tensor(calibrated, dtype=torch.float64), eps=1e-6)
    return float(torch.sigmoid((logit - calibrator.intercept) / calibrator.slope))


def named_paths(pairs: list[str]) -> dict[str, Path]:
    return {name: Path(path) for name, _, path in (pair.partition("=") for pair in pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scored-with", type=Path, required=True, help="the graft whose calibrator the results used")
    parser.add_argument("--calibrators", nargs="+", required=True, metavar="NAME=MODEL")
    parser.add_argument("--results", nargs="+", required=True, metavar="LABEL=RESULT_JSON")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    used = ConfidenceCalibrator.load(args.scored_with)
    candidates = {name: ConfidenceCalibrator.load(model) for name, model in named_paths(args.calibrators).items()}
    report = {}
    for label, path in named_paths(args.results).items():
        words = [word for utterance in json.loads(path.read_text())["utterances"] for word in utterance["words"] or ()
                 if word.get("confidence") is not None and word.get("correct") is not None]
        raw = [raw_confidence(word["confidence"], used) for word in words]
        correct = [word["correct"] for word in words]
        report[label] = {"words": len(words), "raw": expected_calibration_error(raw, correct)} | {
            name: expected_calibration_error([calibrator(value) for value in raw], correct)
            for name, calibrator in candidates.items()
        }
        print(label, {name: round(value, 3) for name, value in report[label].items()})
    if args.output:
        write_text_atomically(args.output, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
