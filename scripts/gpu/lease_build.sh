#!/usr/bin/env bash
# On the GPU machine, in the background (scripts/gpu/lease.sh stage starts it once Kokoro and the wheels are there):
# CUDA MPS where the driver offers it (KOKORO_BENCH=1: Kokoro's throughput with and without), then the corpus's GPU
# part, stored as wideband Opus and packed for carrying back (later leases can stage it instead of remaking it).
#   GPU part:  utterances [0, GPU_UTTERANCES) of the plan, Kokoro (on the GPUs) and espeak-ng (on the CPU cores);
#              CARRIED_CORPUS=1 (on the first `lease.sh stage` call) takes the one staged as .stage/corpus instead.
#   CPU parts: utterances from PLAN_GPU_END on, the Debian engines, made on a CPU machine and carried.
set -x
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=${WORK:-/tmp/work}
stage=${STAGE:-/tmp/stage}
texts=$stage/texts.json.gz
cores=$(nproc)
PLAN_GPU_END=${PLAN_GPU_END:-70000}
GPU_UTTERANCES=${GPU_UTTERANCES:-52000}
BENCH_UTTERANCES=${BENCH_UTTERANCES:-20}
[ "$GPU_UTTERANCES" -le "$PLAN_GPU_END" ] || { echo "GPU part must end by $PLAN_GPU_END"; exit 1; }
if [ "${CARRIED_CORPUS:-0}" = 1 ]; then
  # The GPU part made by an earlier lease and carried back (lease.sh collect-corpus), staged as the group
  # .stage/corpus: nothing to make. voices.json is its tar stream's last member.
  until [ -e "$stage/corpus/voices.json" ]; do sleep 5; done
  ln -sfn "$stage/corpus" "$work/corpus" && touch "$work/build.done"
  exit 0
fi
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c "import torch, kokoro_onnx, phonemizer, espeakng_loader, faker, inflect, soundfile, soxr; print(torch.cuda.device_count(), torch.cuda.get_device_name())"
# One process converts Kokoro's weights first (cached): 32 processes converting at once oversubscribe the cores
# (load average 520 on 32 cores, measured) for minutes.
python3 benchmarks/kokoro_gpu.py --processes 1 --utterances 2
# Batch-1 workers keep the GPU busy with many small kernels from many processes. Without MPS the processes take
# turns on the GPU; with it their kernels run side by side (measured on two H200s, 32 workers: 63.9 utt/s without,
# 116.9 with). KOKORO_BENCH=1 measures both and keeps MPS only where it is faster; else MPS is kept where it serves.
mps=0
if command -v nvidia-cuda-mps-control && nvidia-cuda-mps-control -d; then
  if timeout 60 python3 -c "import torch; print(torch.ones(8, device='cuda').sum().item())"; then
    mps=1
    if [ "${KOKORO_BENCH:-0}" = 1 ]; then
      echo quit | nvidia-cuda-mps-control
      python3 benchmarks/kokoro_gpu.py --processes "$cores" --utterances "$BENCH_UTTERANCES" \
        --output "$work/kokoro_gpu_p$cores.json"
      nvidia-cuda-mps-control -d
      timeout 150 python3 benchmarks/kokoro_gpu.py --processes "$cores" --utterances "$BENCH_UTTERANCES" \
        --output "$work/kokoro_gpu_p${cores}_mps.json" \
        && python3 - "$work/kokoro_gpu_p$cores.json" "$work/kokoro_gpu_p${cores}_mps.json" <<'PY' || mps=0
import json, sys
plain, mps = (json.load(open(path))["utterances_per_second"] for path in sys.argv[1:])
print(f"Kokoro utt/s without MPS {plain}, with MPS {mps}")
sys.exit(0 if mps > 1.1 * plain else 1)
PY
    fi
  fi
  [ "$mps" = 1 ] || echo quit | nvidia-cuda-mps-control
fi
echo "MPS in use: $mps"
started=$(date +%s)
python3 -m audiograft data synth "$work/corpus" --utterances "$GPU_UTTERANCES" --engines kokoro,espeak --texts "$texts" \
  --workers "$cores" --audio-format opus
echo "corpus wall $(( $(date +%s) - started )) s"
python3 -m audiograft data stats "$work/corpus" --json "$work/corpus_gpu_part_stats.json"
[ "$mps" = 1 ] && echo quit | nvidia-cuda-mps-control
touch "$work/build.done"
# Carried back in parts by `lease.sh collect-corpus N` while training runs (a separate Opus pass over FLAC clips, tried
# on 2026-11-30, encoded about 70 clips/s on cores shared with training: 12 minutes for this part).
python3 scripts/gpu/stage.py pack "$work/corpus-parts" --part-mb 60 "$work/corpus" && ls "$work/corpus-parts" \
  && touch "$work/corpus-parts.done"
