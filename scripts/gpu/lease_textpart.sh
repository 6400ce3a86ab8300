#!/usr/bin/env bash
# On the GPU machine, in the background (scripts/gpu/lease.sh textpart): the text lever's corpus part, the first
# TEXT_PART_UTTERANCES utterances planned from the pool file TEXT_POOLS staged in the group textlever (made on the CPU
# machine by `audiograft data texts --sources scrambled` or `--sources fortunes`: bible-kjv, WordNet and fortunes are
# not there), by Kokoro (on the GPUs) and espeak-ng (on the cores). Same engines, seed and so the same held-out voices
# as the main corpus's GPU part.
# lease_train.sh mixes its training clips into train_text<N>.jsonl for each N of TEXT_PART_SHARES.
set -x
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=${WORK:-/tmp/work}
stage=${STAGE:-/tmp/stage}
pools=$stage/textlever/${TEXT_POOLS:-scrambled.json.gz}
until [ -e "$pools" ] && { [ -z "${SITE:-}" ] || [ -e "$SITE/.base" ]; }; do sleep 5; done
# Kokoro's weights are converted once, by one process (lease_build.sh says why).
python3 benchmarks/kokoro_gpu.py --processes 1 --utterances 2
mps=0
if command -v nvidia-cuda-mps-control && nvidia-cuda-mps-control -d; then
  timeout 60 python3 -c "import torch; print(torch.ones(8, device='cuda').sum().item())" && mps=1
  [ "$mps" = 1 ] || echo quit | nvidia-cuda-mps-control
fi
started=$(date +%s)
python3 -m audiograft data synth "$work/textpart" --utterances "${TEXT_PART_UTTERANCES:-20000}" \
  --engines kokoro,espeak --texts "$pools" --workers "$(nproc)" --audio-format opus
echo "text part wall $(( $(date +%s) - started )) s"
python3 -m audiograft data stats "$work/textpart" --json "$work/textpart_stats.json"
# Training runs without MPS: a daemon left running would put the lanes' processes under it.
[ "$mps" = 1 ] && echo quit | nvidia-cuda-mps-control
touch "$work/textpart.done"
