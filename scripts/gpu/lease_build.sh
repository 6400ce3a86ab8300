#!/usr/bin/env bash
# On the GPU machine, in the background (scripts/gpu/lease.sh stage starts it once Kokoro and the wheels are there):
# the engines' speeds on this machine, Kokoro's clips for the per-voice WER table, then the corpus's GPU part.
#   GPU part:  utterances [0, N) of the plan, Kokoro (on the GPU) and espeak-ng (on the CPU cores), N from the
#              measured throughput so that it ends within BUILD_SECONDS; at most PLAN_GPU_END.
#   CPU part:  utterances [PLAN_GPU_END, PLAN_TOTAL), the Debian engines, made on a CPU machine and carried.
set -x
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=${WORK:-/tmp/work}
stage=${STAGE:-/tmp/stage}
texts=$stage/texts.json.gz
cores=$(nproc)
PLAN_GPU_END=${PLAN_GPU_END:-70000}
BUILD_SECONDS=${BUILD_SECONDS:-420}
BENCH_UTTERANCES=${BENCH_UTTERANCES:-20}
# Kokoro per-voice clips for benchmarks/voice_wer.py (0: none; the 2026-11-30 table was made on a CPU machine).
CLIPS_PER_VOICE=${CLIPS_PER_VOICE:-0}
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c "import torch, kokoro_onnx, phonemizer, espeakng_loader, faker, inflect, soundfile, soxr; print(torch.cuda.get_device_name())"
# Kokoro on the GPU: one process converts the weights (once), then P processes share the device.
python3 benchmarks/kokoro_gpu.py --processes 1 --utterances "$BENCH_UTTERANCES" --output "$work/kokoro_gpu_p1.json"
python3 benchmarks/kokoro_gpu.py --processes "$cores" --utterances "$BENCH_UTTERANCES" --output "$work/kokoro_gpu_p$cores.json"
# Per core on this machine's CPUs (GPU hidden): espeak-ng and Kokoro, one process, one thread.
CUDA_VISIBLE_DEVICES= python3 benchmarks/tts_engines.py --speed-only --texts "$texts" --families espeak kokoro-us \
  --per-family 40 --kokoro-per-family 6 --output "$work/tts_speed_gpu_machine_cpu.json"
# Kokoro's clips for the per-voice WER table (scored on the CPU machine with faster-whisper).
[ "$CLIPS_PER_VOICE" -gt 0 ] && python3 benchmarks/voice_wer.py synth "$work/kokoro-clips" --engines kokoro --per-voice "$CLIPS_PER_VOICE" --texts "$texts" --opus
# The corpus's GPU part, sized by the measured throughput (Kokoro is most of it, espeak is cheap).
rate=$(python3 -c "import json; print(json.load(open('$work/kokoro_gpu_p$cores.json'))['utterances_per_second'])")
count=$(python3 -c "print(min($PLAN_GPU_END, max(1000, int($rate * $BUILD_SECONDS * 1.1) // 1000 * 1000)))")
echo "building utterances [0, $count) at ~$rate utt/s"
started=$(date +%s)
python3 -m audiograft data synth "$work/corpus" --utterances "$count" --engines kokoro,espeak --texts "$texts" \
  --workers "$cores"
echo "corpus wall $(( $(date +%s) - started )) s"
touch "$work/build.done"
