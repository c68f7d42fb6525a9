#!/usr/bin/env bash
# On the GPU machine (no network): join the bundle parts (benchmarks/molca_gpu_bundle.sh: the
# wheels + molfm's pubchem-names cache), sent one per call into $PARTS (the repository's copy
# is replaced on every call; /tmp stays while the machine is warm) plus the one carried in
# .gpu/c*/ with this call; check the sha256, install the wheels into /tmp/site and run
# benchmarks/molca_gpu.py (or $SCRIPT) with results in $OUT. See benchmarks/molca_gpu.md.
#   usage: bash benchmarks/molca_gpu_device.sh [TIME_LIMIT_SECONDS] [extra molca_gpu.py flags]
set -euo pipefail
TIME_LIMIT=${1:-470}
shift || true
PARTS=${PARTS:-/tmp/keep}
mkdir -p "$PARTS" && cp .gpu/c*/* "$PARTS"/ 2>/dev/null || true
cat "$PARTS"/part.* >/tmp/bundle.tar
echo "$(cat "$PARTS"/bundle.sha256)  /tmp/bundle.tar" | sha256sum -c --quiet
mkdir -p /tmp/b && tar xf /tmp/bundle.tar -C /tmp/b && rm /tmp/bundle.tar
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    /tmp/b/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD MOLFM_CACHE=/tmp/b/cache PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false MOLCA_BEFORE_CODE=/tmp/b/before-code
python3 -c "import torch, transformers, peft, rdkit, pandas, torch_geometric, lightning as L;
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers',
      transformers.__version__, 'peft', peft.__version__, 'rdkit', rdkit.__version__,
      'pandas', pandas.__version__, 'pyg', torch_geometric.__version__, 'lightning', L.__version__)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# SCRIPT=benchmarks/molca_gpu_naming.py runs the one-model naming command instead
python3 "${SCRIPT:-benchmarks/molca_gpu.py}" --out "$OUT" --work /tmp/runs \
    --time-limit "$TIME_LIMIT" "$@" 2>&1 | tee "$OUT/driver.log"
