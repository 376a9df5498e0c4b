#!/usr/bin/env bash
# Training runs of the AL trade-off study (issue 13 item 4), analysed by tradeoff_fashion_mnist.py.
#
# One model (cnn6: six QCFS layers, 28×28 Fashion-MNIST), one recipe sized for a 2-core CPU
# (a seeded 12,000-image training subset, 6 epochs, SGD lr 0.05, batch 128, cosine, crop + flip,
# 5,000 validation images held out of the rest of the training set), three seeds:
#   uniform L ∈ {1, 2, 4, 8}
#   Algorithm 4 plans χ = 2 {1,4}, χ = 3 {1,2,4} (phase 0: the uniform L = 4 run of that seed)
#                     χ = 2 {2,8}, χ = 3 {2,4,8} (phase 0: the uniform L = 8 run of that seed)
# An AL run trains its own model from scratch for EPOCHS epochs (uniform L for 2/3 of them, then
# the per-layer L: Algorithm 4), the uniform runs' budget; its plan comes from the statistics of
# the uniform run of its seed (phase 0, passed with --init-checkpoint).
# Every run folder resumes (--resume) if the script is stopped and started again; finished runs
# are skipped. One torch thread per run (THREADS, default 1).
#
#   bash benchmarks/tradeoff_train.sh            # from the repository root, .venv installed
set -euo pipefail
cd "$(dirname "$0")/.."
PASCAL=${PASCAL:-.venv/bin/pascal-snn}
OUT=${OUT:-runs/tradeoff}
EPOCHS=${EPOCHS:-6}
TRAIN_IMAGES=${TRAIN_IMAGES:-12000}
SEEDS=${SEEDS:-"0 1 2"}
export OMP_NUM_THREADS=${THREADS:-1}
COMMON=(--dataset fashion-mnist --model cnn6 --epochs "$EPOCHS" --train-images "$TRAIN_IMAGES"
  --lr 0.05 --batch-size 128)
mkdir -p "$OUT"

run() {  # run NAME ARGS...: train into $OUT/NAME unless it finished; resume if it started
  local name=$1
  shift
  local dir=$OUT/$name
  if [[ -f $dir/result.json ]]; then
    echo "skip $name (finished)"
    return
  fi
  local resume=()
  if [[ -f $dir/last.pt || -f $dir/phase0/last.pt ]]; then resume=(--resume); fi
  echo "$(date -u +%FT%TZ) start $name: $PASCAL train ${COMMON[*]} $* --out $dir ${resume[*]}"
  "$PASCAL" train "${COMMON[@]}" "$@" --out "$dir" "${resume[@]}" >"$OUT/$name.log" 2>&1
  echo "$(date -u +%FT%TZ) done  $name"
}

for seed in $SEEDS; do
  for L in 4 8 1 2; do
    run "uniform-L$L-s$seed" --levels "$L" --seed "$seed"
  done
done
for seed in $SEEDS; do
  for plan in "4:1,4" "4:1,2,4" "8:2,8" "8:2,4,8"; do
    base=${plan%%:*}
    levels=${plan#*:}
    run "al-${levels//,/-}-s$seed" --adaptive --levels "$base" --cluster-levels "$levels" \
      --init-checkpoint "$OUT/uniform-L$base-s$seed/best.pt" --seed "$seed"
  done
done
