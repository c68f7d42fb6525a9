#!/usr/bin/env bash
# On the GPU machine (no network): join the bundle parts carried in .gpu/c*/ (wheels + molfm's
# pubchem-names cache, see benchmarks/molca_gpu.md), check its sha256, install the wheels into
# /tmp/site and run benchmarks/molca_gpu.py with results in $OUT.
#   usage: bash benchmarks/molca_gpu_device.sh [TIME_LIMIT_SECONDS] [extra molca_gpu.py flags]
set -euo pipefail
TIME_LIMIT=${1:-470}
shift || true
cat .gpu/c*/part.* >/tmp/bundle.tar
echo "$(cut -d' ' -f1 .gpu/c*/bundle.sha256)  /tmp/bundle.tar" | sha256sum -c --quiet
mkdir -p /tmp/b && tar xf /tmp/bundle.tar -C /tmp/b && rm /tmp/bundle.tar
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    /tmp/b/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD MOLFM_CACHE=/tmp/b/cache PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false
python3 -c "import torch, transformers, peft, rdkit, pandas, torch_geometric, lightning as L;
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers',
      transformers.__version__, 'peft', peft.__version__, 'rdkit', rdkit.__version__,
      'pandas', pandas.__version__, 'pyg', torch_geometric.__version__, 'lightning', L.__version__)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 benchmarks/molca_gpu.py --out "$OUT" --work /tmp/runs --time-limit "$TIME_LIMIT" "$@" \
    2>&1 | tee "$OUT/driver.log"
