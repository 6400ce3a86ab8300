"""Is the graft's gap on real English a matter of voices or of words? The real dev set's own transcripts, spoken by
held-out synthetic voices: a graft that does as well on these as on the synthetic test sample has a voice gap; one
that does as badly as on the real recordings has a gap in what it expects people to say.

    python benchmarks/text_domain.py DEV.jsonl OUT --voices kokoro-mix17-us,kokoro-mix13-gb,flite-rms
    audiograft eval OUT/dev.jsonl --model default --baseline whisper --json OUT/eval.json

Each dev clip is spoken by one of the voices in turn, at rate and pitch 1; the records keep the clip's "corpus" so
the per-source breakdown stays comparable. The voices must be held out of training (the corpus's test split).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from audiograft.corpora.engines import engine_named
from audiograft.corpora.synthesis import Utterance, synthesize_utterance
from audiograft.manifest import read_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dev", type=Path, help="the real dev manifest (`audiograft data dev`)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--voices", required=True, help="comma-separated voice ids from the corpus's test split")
    args = parser.parse_args()

    wanted = args.voices.split(",")
    by_id = {voice.id: voice for engine in {w.split("-")[0] for w in wanted} for voice in engine_named(engine).voices()}
    unknown = [voice_id for voice_id in wanted if voice_id not in by_id]
    if unknown:
        parser.error(f"unknown voices {unknown}; the corpus's test voices are in its voices.json")
    voices = [by_id[voice_id] for voice_id in wanted]
    records = []
    for index, clip in enumerate(read_manifest(args.dev)):
        # An all-capitals transcript (TIMIT's) would be spelled out letter by letter by the phonemisers.
        text = clip.text.capitalize() if clip.text.isupper() else clip.text
        utterance = Utterance(f"{index:04d}", index, "dev", text, voices[index % len(voices)], 1.0, 1.0)
        record = synthesize_utterance(args.out, utterance)
        records.append(record | {"text": clip.text, "corpus": clip.metadata.get("corpus", "")})
    (args.out / "dev.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))


if __name__ == "__main__":
    main()
