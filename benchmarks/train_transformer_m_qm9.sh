#!/usr/bin/env bash
# Reproduces the shipped transformer-m-small-qm9 (molfm/assets/transformer-m-small-qm9): Transformer-M
# small, joint 2D+3D mode-sampled training with the 3D denoising loss on QM9 HOMO, LUMO and gap
# (eV), random 110,000 / 10,000 / rest split (data seed 0), then stored in fp16.
# The run is the "joint" row of benchmarks/qm9_transformer_m.py (20 minutes of the 2-core CPU:
# 25,842 steps of 64 molecules); the same settings from the CLI:
set -euo pipefail
RUN=${1:-runs/transformer-m-small-qm9}
molfm train property --model transformer-m --data qm9 --target-columns homo lumo gap \
    --split-sizes 110000 10000 -1 --mode sampled --eval-mode available --auxiliary-weight 0.1 \
    --batch-size 64 --lr 5e-4 --warmup-steps 500 --max-steps 25842 --val-every-n-steps 2584 \
    --on-invalid skip --accelerator cpu --output-dir "$RUN"
python - "$RUN" <<'PY'
import sys

import torch

from molfm.hub import from_pretrained, load_config, save_pretrained

run = sys.argv[1]
model = from_pretrained(f"{run}/model")
extra = {"training": load_config(f"{run}/model").get("training", {})}
save_pretrained(model, "molfm/assets/transformer-m-small-qm9", dtype=torch.float16, extra=extra)
PY
