#!/usr/bin/env bash
# MolCA's naming step before and after (benchmarks/molca_step.py; RESULTS.md, "MolCA's training
# step"): the code of BEFORE (a commit) against the working tree (eager, then with each LM
# layer compiled; the frozen projections fused as molfm train molca does, and the last two rows
# without that), on the tiny Llama with SmolLM2's depth and on the real SmolLM2, one thread
# each.
#   usage: bash benchmarks/molca_step.sh BEFORE_COMMIT OUT_DIR
set -euo pipefail
BEFORE=${1:?usage: molca_step.sh BEFORE_COMMIT OUT_DIR}
OUT=${2:?usage: molca_step.sh BEFORE_COMMIT OUT_DIR}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT/before-code"
git -C "$REPO" archive "$BEFORE" molfm | tar -x -C "$OUT/before-code"
export OMP_NUM_THREADS=1
STEP="python $REPO/benchmarks/molca_step.py"
OLD="--legacy --lora-dropout 0.1 --random-batches"  # what the code before did by default
for LM in tiny smollm2; do
  if [ "$LM" = tiny ]; then SIZE="--batch-size 8 --pool 256"; else SIZE="--batch-size 4 --pool 48"; fi
  PYTHONPATH="$OUT/before-code" $STEP --lm $LM $SIZE --label before $OLD -o "$OUT/${LM}_before.json"
  $STEP --lm $LM $SIZE --label after -o "$OUT/${LM}_after.json"
  $STEP --lm $LM $SIZE --label after-qv --lora-targets qv -o "$OUT/${LM}_after_qv.json"
  $STEP --lm $LM $SIZE --label after-qv-fused --lora-targets qv --fused-adamw \
    -o "$OUT/${LM}_after_qv_fused.json"
  $STEP --lm $LM $SIZE --label after-qv-fused-compile --lora-targets qv --fused-adamw --compile \
    -o "$OUT/${LM}_after_qv_fused_compile.json"
  $STEP --lm $LM $SIZE --label after-qv-fused-unfused-proj --lora-targets qv --fused-adamw \
    --no-fuse -o "$OUT/${LM}_after_qv_fused_unfused_proj.json"
  $STEP --lm $LM $SIZE --label after-qv-fused-compile-unfused-proj --lora-targets qv \
    --fused-adamw --compile --no-fuse -o "$OUT/${LM}_after_qv_fused_compile_unfused_proj.json"
done
