"""Can the word aligner's CTC head tell what was said from what a graft invented? Pick, per clip, among several
grafts' hypotheses the one whose letters it finds likeliest, and score the picks.

    python benchmarks/ctc_pick.py --aligner src/audiograft/presets/default_model dev/dev.jsonl \
        en_dev_v1.json en_dev_v3.json en_dev_v4.json ...

Each RESULT is an `audiograft eval --json` of one graft on MANIFEST. Printed: the corpus WER of the last RESULT
alone, of the CTC head's picks (`WordAligner.letter_nlls`, a non-empty hypothesis where any is) and of the best
hypothesis per clip (the oracle that bounds any picking).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jiwer
import torch

from audiograft.inference.alignment import WordAligner
from audiograft.manifest import read_manifest
from audiograft.training.aligner import encoder_frames
from audiograft.training.encoder_cache import EncoderCache


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    kept = [(r, h) for r, h in zip(references, hypotheses) if r]
    return float(jiwer.wer([r for r, _ in kept], [h for _, h in kept]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aligner", type=Path, required=True, help="a model directory holding word_aligner.*")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/domain_gap_cache"))
    parser.add_argument("manifest", type=Path)
    parser.add_argument("results", type=Path, nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    aligner = WordAligner.from_pretrained(args.aligner)
    cache = EncoderCache.of_saved_graft(args.cache)
    frames = {str(u.audio): f for u, f in encoder_frames(cache, read_manifest(args.manifest))}
    candidates: dict[str, list[tuple[str, str]]] = {}
    for path in args.results:
        for utterance in json.loads(path.read_text())["utterances"]:
            candidates.setdefault(utterance["audio"], []).append(
                (utterance["reference_normalized"], utterance["hypothesis_normalized"]))
    references, last, picked, oracle = [], [], [], []
    for audio, hypotheses in candidates.items():
        if audio not in frames or len(hypotheses) != len(args.results):
            continue
        reference = hypotheses[0][0]
        texts = [text for _, text in hypotheses]
        spoken = [text for text in texts if text.strip()] or texts
        references.append(reference)
        last.append(texts[-1])
        scores = aligner.letter_nlls(frames[audio], [text.split() for text in spoken])
        picked.append(spoken[scores.index(min(scores))])
        oracle.append(min(texts, key=lambda text: jiwer.wer(reference, text) if reference else len(text.split())))
    print(json.dumps({
        "clips": len(references),
        "last_result": corpus_wer(references, last),
        "ctc_pick": corpus_wer(references, picked),
        "oracle": corpus_wer(references, oracle),
    }, indent=2))


if __name__ == "__main__":
    main()
