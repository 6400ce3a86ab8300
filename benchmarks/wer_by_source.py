"""Corpus WER of each source of a mixed evaluation set, for the graft and its baseline, from `audiograft eval --json`.

    python benchmarks/wer_by_source.py dev/dev.jsonl en.json [more.json ...] [--field corpus] [--apart mfa-recordings]

The real English dev set mixes clips of several sources (its manifest's "corpus" field). Each result's utterances
are in the manifest's order; their normalised reference and hypothesis are scored per source as the eval scores the
whole set (jiwer's corpus WER, clips with an empty reference left out). With --apart, one source against all the
others as well: the dev set's largest source is MFA's own test recordings, most of them one phrase.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from pathlib import Path

import jiwer

from audiograft.files import write_text_atomically
from audiograft.manifest import read_manifest

logger = logging.getLogger("benchmarks.wer_by_source")


def wer_by_group(groups: list[str], utterances: list[dict]) -> dict[str, dict]:
    """WER and words scored for each group label, the labels given in the utterances' order."""
    if len(groups) != len(utterances):
        raise ValueError(f"the manifest has {len(groups)} clips, the result {len(utterances)}: not the same set")
    pairs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for group, utterance in zip(groups, utterances):
        if utterance["reference_normalized"].strip():
            pairs[group].append((utterance["reference_normalized"], utterance["hypothesis_normalized"]))
    return {
        group: {"wer": float(jiwer.wer([r for r, _ in kept], [h for _, h in kept])), "clips": len(kept),
                "words": sum(len(r.split()) for r, _ in kept)}
        for group, kept in sorted(pairs.items())
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("results", type=Path, nargs="+", help="`audiograft eval --json` results on that manifest")
    parser.add_argument("--field", default="corpus", help="the manifest field naming each clip's source")
    parser.add_argument("--apart", help="also score this source against all the others together")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    sources = [str(clip.metadata.get(args.field, "")) for clip in read_manifest(args.manifest)]
    if args.apart and args.apart not in sources:
        parser.error(f"no clip of {args.manifest} has {args.field} {args.apart!r}")
    report = {}
    for path in args.results:
        result = json.loads(path.read_text())
        for system, scored in [("graft", result), ("baseline", result.get("baseline"))]:
            if not scored:
                continue
            rows = wer_by_group(sources, scored["utterances"])
            if args.apart:
                apart = [args.apart if source == args.apart else "the others" for source in sources]
                rows |= {f"{label} (apart)": row for label, row in wer_by_group(apart, scored["utterances"]).items()}
            report[f"{path} {system}"] = rows
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger.info(json.dumps(report, indent=1))
    if args.output:
        write_text_atomically(args.output, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
