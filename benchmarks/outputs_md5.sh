#!/usr/bin/env bash
# The outputs a refactor must not change: seeded sampling, decoration and pair-tuning, and the
# shipped checkpoints' predictions and names, as MD5s (benchmarks/RESULTS.md, "Outputs that stay
# the same"). Run it before and after a change, on the same machine, and compare.
#   bash benchmarks/outputs_md5.sh runs/outputs_md5
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: outputs_md5.sh OUTPUT_DIR}
mkdir -p "$OUT" && cd "$OUT"
export OMP_NUM_THREADS=1
MOSES="$REPO/tests/data/moses_train_500.csv"
(echo smiles; sed -n 2,41p "$MOSES" | cut -d, -f1) > mols.csv
(echo smiles; sed -n 2,301p "$MOSES" | cut -d, -f1) > opt.csv
head -6 mols.csv > five.csv
molfm generate -n 300 --seed 7 -o gen.csv
molfm decorate --scaffold 'c1ccc(cc1)*' -n 50 --seed 3 -o dec.csv
molfm predict --data-path mols.csv -o pred2d.csv
molfm predict --data-path mols.csv --conformers -o pred3d.csv
molfm optimize --model gp-molformer-small-moses-analogs --data-path opt.csv --n-molecules 300 \
  --max-steps 3 --batch-size 8 --n-prompt 3 --n-sources 3 --n-candidates 2 --property qed \
  --seed 1 --output-dir opt --no-progress
molfm name --data-path five.csv -o names.csv
md5sum gen.csv dec.csv pred2d.csv pred3d.csv opt/candidates.csv opt/pairs.csv names.csv
