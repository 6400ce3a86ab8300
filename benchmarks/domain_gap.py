"""Where the graft loses real speech: letter error rates on real and synthetic clips, three readers side by side.

    python benchmarks/domain_gap.py --aligner src/audiograft/presets/default_model \
        --set "real English dev" /tmp/devx/dev/dev.jsonl en_dev_v4.json \
        --set "synthetic test sample" test-sample/test.jsonl synth_v4.json [--output benchmarks/domain_gap.json]

Each --set is a label, a manifest and the graft's `audiograft eval --json` result on it; whisper-base's hypotheses
are that result's baseline, or, where it was run without one, the baseline of the --baseline-json result given for
it (another `audiograft eval --baseline whisper` on the same manifest), in the order of the sets that need one. Three readers of
the same frozen whisper-base encoder frames are scored on one scale, letters without spaces (a-z and inner
apostrophes, Whisper-normalised words), because the word aligner's CTC head writes letters and no word breaks:
- the aligner's CTC letters, greedy: a small head trained on synthetic voices' frames alone, no language model;
- the graft (projector + LLM with LoRA, trained on the same kind of voices);
- whisper-base's own decoder (trained on 680,000 hours of real speech).
If the small head loses as much on real speech as the graft does, the frames of real voices are what the synthetic
training data does not cover; if it holds up while the graft does not, the projector and LLM are what fails to carry
over.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import jiwer
import torch

from audiograft.evaluation.metrics import normalize
from audiograft.files import write_text_atomically
from audiograft.inference.alignment import ALPHABET, BLANK, WordAligner, spoken_letters
from audiograft.manifest import read_manifest
from audiograft.training.aligner import encoder_frames
from audiograft.training.encoder_cache import EncoderCache

logger = logging.getLogger("benchmarks.domain_gap")


def letters(text: str, language: str | None = None) -> str:
    return "".join(spoken_letters(word) for word in normalize(text, language).split())


def greedy_letters(aligner: WordAligner, frames: torch.Tensor) -> str:
    with torch.inference_mode():
        log_probs, _ = aligner(frames[None], torch.tensor([frames.shape[0]]))
    best = log_probs[0].argmax(-1).tolist()
    collapsed = [c for i, c in enumerate(best) if c != BLANK and (i == 0 or c != best[i - 1])]
    return "".join(ALPHABET[c - 1] for c in collapsed)


def letter_error_rate(references: list[str], hypotheses: list[str]) -> float:
    # jiwer's CER counts character edits over reference characters; these strings hold letters only.
    kept = [(r, h) for r, h in zip(references, hypotheses) if r]
    return float(jiwer.cer([r for r, _ in kept], [h for _, h in kept]))


def score_set(aligner: WordAligner, cache: EncoderCache, manifest: Path, result: dict, baseline: dict) -> dict:
    utterances = read_manifest(manifest)
    by_audio = {str(u.audio): u for u in utterances}
    clips = {str(u.audio): frames for u, frames in encoder_frames(cache, utterances)}
    graft = {u["audio"]: u["hypothesis"] for u in result["utterances"]}
    whisper = {u["audio"]: u["hypothesis"] for u in baseline["utterances"]}
    audios = [a for a in by_audio if a in clips and a in graft and a in whisper]
    references = [letters(by_audio[a].text) for a in audios]
    return {
        "clips": len(audios),
        "reference_letters": sum(map(len, references)),
        "ctc_head": letter_error_rate(references, [greedy_letters(aligner, clips[a]) for a in audios]),
        "graft": letter_error_rate(references, [letters(graft[a]) for a in audios]),
        "whisper_base": letter_error_rate(references, [letters(whisper[a]) for a in audios]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aligner", type=Path, required=True, help="a model directory holding word_aligner.*")
    parser.add_argument("--set", nargs=3, action="append", required=True, metavar=("LABEL", "MANIFEST", "RESULT"))
    parser.add_argument("--baseline-json", nargs="*", type=Path, default=[],
                        help="results holding whisper-base's as their baseline, one per --set whose RESULT has none")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/domain_gap_cache"))
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    aligner = WordAligner.from_pretrained(args.aligner)
    cache = EncoderCache.of_saved_graft(args.cache)
    baselines = iter(args.baseline_json)
    report = {}
    for label, manifest, result_path in args.set:
        result = json.loads(Path(result_path).read_text())
        baseline = result.get("baseline") or json.loads(next(baselines).read_text())["baseline"]
        report[label] = score_set(aligner, cache, Path(manifest), result, baseline)
        logger.info("%s: %s", label, report[label])
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        write_text_atomically(args.output, text + "\n")


if __name__ == "__main__":
    main()
