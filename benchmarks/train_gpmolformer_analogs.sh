#!/usr/bin/env bash
# Reproduce the shipped analog base molfm/assets/gp-molformer-small-moses-analogs (CPU, ~16-18 min
# on 2 cores): 2,000 steps of analog rows on the shipped 30,000-step model.
set -euo pipefail
molfm train gp-molformer-analogs --output-dir runs/analogs --init gp-molformer-small-moses \
  --max-steps 2000 --val-every-n-steps 500 --seed 0 --data-seed 0
python - <<'PY'
import torch
from molfm.hub import from_pretrained, load_config, save_pretrained
src = "runs/analogs/model"
cfg = load_config(src)
extra = {k: v for k, v in cfg.items() if k not in ("molfm_version", "model_type", "model_config")}
save_pretrained(from_pretrained(src), "molfm/assets/gp-molformer-small-moses-analogs", extra=extra, dtype=torch.float16)
PY
