#!/usr/bin/env bash
# Sweep the box size update options (max_scale_change, size_lr, size_lr_by_score) with dytrack eval on one
# GOT-10k folder; one result folder per setting, two settings at a time, one thread each.
#   benchmarks/size_tuning.sh outputs/size/tune val outputs/size/eval/tune "1.05:1:no" "0:0.5:yes" ...
# A setting is BOUND:LR:BYSCORE (BOUND 0 = no bound, LR 1 = no smoothing, BYSCORE yes|no).
set -euo pipefail
root=$1; split=$2; out=$3; shift 3
run() {
  local bound lr by
  IFS=: read -r bound lr by <<< "$1"
  local name="b${bound}_lr${lr}_${by}"
  local flag=--no-size-lr-by-score
  [[ $by == yes ]] && flag=--size-lr-by-score
  dytrack eval --format got10k --root "$root" --split "$split" --results "$out/$name" --threads 1 --quiet \
      --max-scale-change "$bound" --size-lr "$lr" $flag > "$out/$name.log" 2>&1
  echo "$name $(grep -A2 '^| Tracker | AUC' "$out/$name.log" | tail -1)"
}
mkdir -p "$out"
settings=("$@")
for ((i = 0; i < ${#settings[@]}; i += 2)); do
  run "${settings[i]}" &
  if ((i + 1 < ${#settings[@]})); then run "${settings[i + 1]}" & fi
  wait
done
