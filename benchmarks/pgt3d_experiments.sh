#!/usr/bin/env bash
# 3D-PGT experiments on the 2-core CPU (benchmarks/RESULTS.md, "3D-PGT"). Two lanes run side by
# side, one thread each:  bash benchmarks/pgt3d_experiments.sh lane1 & bash ... lane2 &
# Budgets are step counts (the same per row of a table); measured CPU times are in each run's
# time.txt. Protocol: benchmarks/pgt3d_splits.py writes the disjoint QM9 splits first.
set -euo pipefail
R=${RUNS:-runs/pgt3d}
S=$R/splits
PRETRAIN_STEPS=${PRETRAIN_STEPS:-10000}
FINETUNE_STEPS=${FINETUNE_STEPS:-8000}
B3DB_STEPS=${B3DB_STEPS:-2000}
FINETUNE_WARMUP=${FINETUNE_WARMUP:-500}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
QM9_TARGETS="--target-columns mu --target-columns alpha --target-columns homo --target-columns lumo --target-columns gap --target-columns r2 --target-columns zpve --target-columns cv"
timed() { local out=$1; shift; mkdir -p "$out"; /usr/bin/time -f "%e s wall, %U s user" -o "$out/time.txt" "$@" > "$out/stdout.txt" 2>&1; }

pretrain() {  # NAME WEIGHTING [WEIGHTS]
  local extra=(); [ -n "${3:-}" ] && extra=(--task-weights "$3")
  timed "$R/pretrain_$1" molfm pretrain 3d-pgt --data qm9 --on-invalid skip \
    --split-file "$S/pretrain_split.npz" --weighting "$2" "${extra[@]}" \
    --max-steps "$PRETRAIN_STEPS" --warmup-steps 500 --accelerator cpu --no-progress \
    --output-dir "$R/pretrain_$1"
}
finetune_qm9() {  # NAME SEED [INIT]
  local extra=(); [ -n "${3:-}" ] && extra=(--init "$3")
  timed "$R/qm9_$1_seed$2" molfm train property --model gps --data qm9 --on-invalid skip \
    --split-file "$S/finetune_split.npz" $QM9_TARGETS "${extra[@]}" --seed "$2" \
    --max-steps "$FINETUNE_STEPS" --warmup-steps "$FINETUNE_WARMUP" --accelerator cpu --no-progress \
    --output-dir "$R/qm9_$1_seed$2"
}
finetune_qm9_transformer_m() {  # SEED: trained jointly (2D+3D, denoising), evaluated in 2D
  timed "$R/qm9_transformer_m_joint_seed$1" molfm train property --model transformer-m \
    --data qm9 --on-invalid skip --split-file "$S/finetune_split.npz" $QM9_TARGETS \
    --mode sampled --eval-mode 2d --auxiliary-weight 0.1 --seed "$1" \
    --max-steps "$FINETUNE_STEPS" --warmup-steps 500 --accelerator cpu --no-progress \
    --output-dir "$R/qm9_transformer_m_joint_seed$1"
}
b3db() {  # NAME SEED [INIT]
  local extra=(); [ -n "${3:-}" ] && extra=(--init "$3")
  timed "$R/b3db_$1_seed$2" molfm train property --model gps --data b3db --subset classification --on-invalid skip \
    --target-columns bbb --split scaffold --seed "$2" --data-seed "$2" "${extra[@]}" \
    --max-steps "$B3DB_STEPS" --warmup-steps 200 --accelerator cpu --no-progress \
    --output-dir "$R/b3db_$1_seed$2"
}

wait_for() { while [ ! -f "$1/metrics.json" ]; do sleep 20; done; }

# As run for RESULTS.md: lane1 and lane2 side by side, then (after the seed-0 B3DB runs) b3db_a,
# b3db_b and single side by side.
case "${1:-}" in
  lane1)
    pretrain auto auto
    finetune_qm9 pgt_auto 0 "$R/pretrain_auto"
    b3db pgt_auto 0 "$R/pretrain_auto"
    ;;
  lane2)
    pretrain equal equal
    finetune_qm9 pgt_equal 0 "$R/pretrain_equal"
    finetune_qm9 scratch 0
    b3db scratch 0
    ;;
  b3db_a)
    wait_for "$R/b3db_pgt_auto_seed0"
    for s in 1 2; do b3db pgt_auto "$s" "$R/pretrain_auto"; done
    finetune_qm9_transformer_m 0
    ;;
  b3db_b)
    wait_for "$R/b3db_scratch_seed0"
    for s in 1 2; do b3db scratch "$s"; done
    ;;
  single)  # each task alone, a shorter budget: compared at matched steps on the energy probe
    PRETRAIN_STEPS=${SINGLE_STEPS:-3000}
    pretrain bond_only fixed 1,0,0
    pretrain angle_only fixed 0,1,0
    pretrain dihedral_only fixed 0,0,1
    ;;
  short)  # searched and equal weights at the single-task budget (the same schedule)
    PRETRAIN_STEPS=${SINGLE_STEPS:-3000}
    pretrain auto_3k auto
    pretrain equal_3k equal
    ;;
  seeds1)  # second seeds of the QM9 rows, side by side with seeds2
    finetune_qm9 scratch 1
    finetune_qm9 pgt_auto 1 "$R/pretrain_auto"
    ;;
  seeds2)
    finetune_qm9 pgt_equal 1 "$R/pretrain_equal"
    finetune_qm9_transformer_m 1
    ;;
  official)  # the official code's four-task loss (1:1:1 + raw energy in Hartree), side by side
    pretrain official official  # with searched; the steps as given by PRETRAIN_STEPS
    finetune_qm9 pgt_official 0 "$R/pretrain_official"
    ;;
  searched)
    pretrain auto auto
    finetune_qm9 pgt_auto 0 "$R/pretrain_auto"
    ;;
  scratch)  # the from-scratch reference at the same fine-tuning budget
    finetune_qm9 scratch 0
    ;;
  *) echo "usage: $0 lane1|lane2|b3db_a|b3db_b|single|short|seeds1|seeds2|official|searched|scratch" >&2; exit 2 ;;
esac
