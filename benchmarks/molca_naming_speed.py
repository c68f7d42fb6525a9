"""Beam-5 naming speed of a fresh MolCA (GINE 5x300, LoRA r16, SmolLM2), one CPU thread, 64
tokens forced: CPU seconds per molecule at batch 4 and batch 1 (docs/molca.md).

    python benchmarks/molca_naming_speed.py
"""

import json
import resource
import time

import torch

from molfm.chem.featurize import smiles_to_data
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.systems.molca.model import MolCA, MolCAConfig

torch.set_num_threads(1)  # one thread: the numbers in docs/molca.md

model = MolCA.build(MolCAConfig()).eval()  # LoRA r16, GINE 5x300, SmolLM2
smiles = [
    "CC(=O)Oc1ccccc1C(=O)O",
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O",
]
g = collate_dense(list(DenseGraphDataset([smiles_to_data(s) for s in smiles])))
out = {}
for n in (4, 1):
    gg = collate_dense(list(DenseGraphDataset([smiles_to_data(s) for s in smiles[:n]])))
    t, c = time.time(), time.process_time()
    names = model.generate(gg, smiles[:n], num_beams=5, max_new_tokens=64, min_new_tokens=64)
    out[f"batch{n}"] = {
        "wall_s_per_mol": round((time.time() - t) / n, 2),
        "cpu_s_per_mol": round((time.process_time() - c) / n, 2),
    }
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
