#!/usr/bin/env bash
# Reproduces the shipped gps-3dpgt-small-qm9 (molfm/assets/gps-3dpgt-small-qm9): the small GPS
# encoder pretrained with 3D-PGT on the 50,000 QM9 pretraining molecules of the protocol split
# (DFT geometry; 2,000 held-out molecules guide the automatic task weights through U0), 10,000
# steps of 64 molecules (about 16 minutes of one CPU thread), then stored in fp16.
set -euo pipefail
RUN=${1:-runs/gps-3dpgt-small-qm9}
python benchmarks/pgt3d_splits.py "$RUN"
molfm pretrain 3d-pgt --data qm9 --on-invalid skip --split-file "$RUN/splits/pretrain_split.npz" \
    --weighting auto --max-steps 10000 --warmup-steps 500 --accelerator cpu --output-dir "$RUN"
python - "$RUN" <<'PY'
import sys

import torch

from molfm.hub import from_pretrained, load_config, save_pretrained

run = sys.argv[1]
encoder = from_pretrained(f"{run}/model")
extra = {"pretraining": load_config(f"{run}/model").get("pretraining", {})}
save_pretrained(encoder, "molfm/assets/gps-3dpgt-small-qm9", dtype=torch.float16, extra=extra)
PY
