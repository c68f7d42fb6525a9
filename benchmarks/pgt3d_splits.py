"""Write the disjoint QM9 splits of the 3D-PGT protocol (50k pretraining + 2k held-out with DFT
3D; 50k for fine-tuning on 2D, 40k/5k/5k), seed 0, into RUNS/splits (default runs/pgt3d).

    python benchmarks/pgt3d_splits.py [RUNS]
"""

import sys
from pathlib import Path

from molfm.data.prepare import prepare_dataset
from molfm.data.sources import get_source
from molfm.systems.pgt3d.protocol import qm9_protocol_splits

runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/pgt3d")
dataset = prepare_dataset(get_source("qm9"), on_invalid="skip").dataset
for path in qm9_protocol_splits(dataset.num_molecules, runs / "splits", seed=0):
    print(path)
