"""Would the word aligner's CTC head make word confidences hold on real speech? A calibrator with an acoustic feature.

    python benchmarks/acoustic_confidence.py --aligner src/audiograft/presets/default_model \
        --fit calibration.jsonl cal.json --score "real English dev" dev/dev.jsonl en.json \
        --score "synthetic test sample" test-sample/test.jsonl syn.json [--output acoustic_confidence.json]

Each RESULT is `audiograft eval --json` of the model on that manifest (its words carry times, calibrated confidences
and right/wrong judgements). The model's calibrator (Platt scaling of the logit of the word's token-probability
product) is undone to get the raw scores back. The acoustic feature is how well the CTC head hears the word's letters
where the aligner placed the word: the CTC negative log-likelihood of its letters in its frames (2 frames of margin
each side), per letter. The head loses 1.2x between synthetic and real voices where the graft loses 3.1x
(benchmarks/domain_gap.py), so a confidence leaning on it may transfer better. Two logistic regressions are fitted
on the --fit set's words, one on the LLM's score alone (the shipped calibrator's form) and one on both features, and
each is scored by expected calibration error (audiograft.evaluation.metrics) on every --score set.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import torch
from torch import nn

from audiograft.evaluation.metrics import expected_calibration_error
from audiograft.files import write_text_atomically
from audiograft.inference.alignment import (
    BLANK,
    ConfidenceCalibrator,
    WordAligner,
    letter_targets,
)
from audiograft.manifest import read_manifest
from audiograft.training.aligner import encoder_frames
from audiograft.training.encoder_cache import EncoderCache

logger = logging.getLogger("benchmarks.acoustic_confidence")
MARGIN_FRAMES = 2


def word_features(aligner: WordAligner, cache: EncoderCache, manifest: Path, result: dict,
                  calibrator: ConfidenceCalibrator) -> tuple[torch.Tensor, torch.Tensor]:
    """(words, 2) features, the LLM's raw logit and the CTC head's per-letter NLL, and (words,) right/wrong flags."""
    utterances = read_manifest(manifest)
    clips = {str(u.audio): frames for u, frames in encoder_frames(cache, utterances)}
    rows, flags = [], []
    for utterance in result["utterances"]:
        frames = clips.get(utterance["audio"])
        if frames is None:
            continue
        with torch.inference_mode():
            log_probs, _ = aligner(frames[None], torch.tensor([frames.shape[0]]))
        for word in utterance["words"] or []:  # None where the answer is empty
            targets = letter_targets([word["word"]])
            if not targets:
                continue
            start = max(0, int(word["start"] / aligner.frame_seconds) - MARGIN_FRAMES)
            end = min(frames.shape[0], math.ceil(word["end"] / aligner.frame_seconds) + MARGIN_FRAMES)
            span = log_probs[0, start:end]
            nll = float(nn.functional.ctc_loss(
                span[:, None], torch.tensor([targets]), torch.tensor([span.shape[0]]), torch.tensor([len(targets)]),
                blank=BLANK, reduction="sum", zero_infinity=True,
            )) / len(targets)
            # zero_infinity gives 0 where the span is too short for the letters; a large NLL is capped.
            rows.append([word["confidence"], min(nll, 20.0)])
            flags.append(float(word["correct"]))
    features = torch.tensor(rows, dtype=torch.float64)
    # The calibrator undone: its clamp (alignment._logit) is torch.logit's eps.
    features[:, 0] = (torch.logit(features[:, 0], eps=1e-6) - calibrator.intercept) / calibrator.slope
    return features, torch.tensor(flags, dtype=torch.float64)


def fit_logistic(features: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """Weights and bias of a maximum-likelihood logistic regression (LBFGS, as ConfidenceCalibrator.fit)."""
    params = torch.zeros(features.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(features @ params[:-1] + params[-1], flags)
        loss.backward()
        return loss

    optimizer.step(closure)
    return params.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aligner", type=Path, required=True, help="the model directory (word aligner, calibrator)")
    parser.add_argument("--fit", nargs=2, required=True, metavar=("MANIFEST", "RESULT"))
    parser.add_argument("--score", nargs=3, action="append", required=True, metavar=("LABEL", "MANIFEST", "RESULT"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/domain_gap_cache"))
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    aligner = WordAligner.from_pretrained(args.aligner)
    calibrator = ConfidenceCalibrator.load(args.aligner)
    cache = EncoderCache.of_saved_graft(args.cache)

    def features_of(manifest: str, result: str) -> tuple[torch.Tensor, torch.Tensor]:
        return word_features(aligner, cache, Path(manifest), json.loads(Path(result).read_text()), calibrator)

    fit_features, fit_flags = features_of(*args.fit)
    models = {"LLM score alone": (slice(0, 1), fit_logistic(fit_features[:, :1], fit_flags)),
              "LLM score + CTC letters": (slice(0, 2), fit_logistic(fit_features, fit_flags))}
    report = {"weights": {name: params.tolist() for name, (_, params) in models.items()}}
    scored = [(label, features_of(manifest, result)) for label, manifest, result in args.score]
    for label, (features, flags) in [("fit set", (fit_features, fit_flags)), *scored]:
        report[label] = {"words": len(flags), "right": float(flags.mean())}
        for name, (columns, params) in models.items():
            confidences = torch.sigmoid(features[:, columns] @ params[:-1] + params[-1])
            report[label][name] = expected_calibration_error(confidences.tolist(), flags.bool().tolist())
        logger.info("%s: %s", label, report[label])
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        write_text_atomically(args.output, text + "\n")


if __name__ == "__main__":
    main()
