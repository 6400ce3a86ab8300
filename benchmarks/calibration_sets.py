"""Which held-out speech to fit the confidence calibrator on: each candidate calibrator's ECE on every scored set.

    python benchmarks/calibration_sets.py --scored-with MODEL_A \
        --calibrators corpus=MODEL_A scrambled=MODEL_B union=MODEL_C \
        --results "real English dev"=en.json "synthetic test"=syn.json [--bootstrap 1000] [--output report.json]

Each result is an `audiograft eval --json` of one graft whose confidences went through MODEL_A's calibrator, or are
raw where MODEL_A has none; the candidates are the same graft's calibrators fitted by `audiograft calibrate` on
different sets. Platt scaling is affine in logit space, so the words are rescored exactly instead of transcribed
again: logit(raw) = (logit(calibrated) - intercept) / slope, then each candidate's own slope and intercept.

--bootstrap N adds, for each candidate on each set, the 95% interval of its ECE minus the raw ECE over N resamples of
the set's utterances (the words of one clip move together): an interval that holds 0 says the set cannot tell the two
apart.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
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


def words_ece(words: list[tuple[float, bool]], calibrator: ConfidenceCalibrator | None = None) -> float:
    """ECE of (raw confidence, correct) words, their confidences through `calibrator` where one is given."""
    return expected_calibration_error([calibrator(raw) if calibrator else raw for raw, _ in words],
                                      [right for _, right in words])


def ece_change_interval(
    utterances: list[list[tuple[float, bool]]], calibrator: ConfidenceCalibrator, resamples: int, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of ECE(calibrated) - ECE(raw) over resamples of the utterances, each a list of
    (raw confidence, correct) words. Hand-written: a dozen lines against adding scipy for its bootstrap."""
    # Each word calibrated once, not once per resample: the calibrator is a scalar torch call.
    pairs = [[((raw, right), (calibrator(raw), right)) for raw, right in words] for words in utterances]
    generator = np.random.default_rng(seed)
    changes = []
    for _ in range(resamples):
        sample = [pair for index in generator.integers(len(pairs), size=len(pairs)) for pair in pairs[index]]
        changes.append(words_ece([calibrated for _, calibrated in sample]) - words_ece([raw for raw, _ in sample]))
    low, high = np.percentile(changes, [2.5, 97.5])
    return float(low), float(high)


def named_paths(pairs: list[str]) -> dict[str, Path]:
    return {name: Path(path) for name, _, path in (pair.partition("=") for pair in pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scored-with", type=Path, required=True, help="the graft whose calibrator the results used")
    parser.add_argument("--calibrators", nargs="+", required=True, metavar="NAME=MODEL")
    parser.add_argument("--results", nargs="+", required=True, metavar="LABEL=RESULT_JSON")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N", help="resamples for each change's interval")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    used = ConfidenceCalibrator.load(args.scored_with)
    candidates = {name: ConfidenceCalibrator.load(model) for name, model in named_paths(args.calibrators).items()}
    report = {}
    for label, path in named_paths(args.results).items():
        utterances = [[(raw_confidence(word["confidence"], used), word["correct"]) for word in utterance["words"] or ()
                       if word.get("confidence") is not None and word.get("correct") is not None]
                      for utterance in json.loads(path.read_text())["utterances"]]
        utterances = [words for words in utterances if words]
        words = [word for utterance_words in utterances for word in utterance_words]
        report[label] = {"words": len(words), "raw": words_ece(words)} | {
            name: words_ece(words, calibrator) for name, calibrator in candidates.items()
        }
        if args.bootstrap:
            report[label] |= {f"{name} - raw, 95%": ece_change_interval(utterances, calibrator, args.bootstrap)
                              for name, calibrator in candidates.items()}
        print(label, {name: np.round(value, 3).tolist() for name, value in report[label].items()})
    if args.output:
        write_text_atomically(args.output, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
