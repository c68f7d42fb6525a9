"""Peak memory and time of Transformer-M (small) against molecule size, 10 to 100 heavy atoms.

Real molecules: PubChem compounds from the ``pubchem-names`` data set (the ``chemicals`` wheel),
binned by heavy-atom count (+-2); 3D coordinates from RDKit (ETKDGv3 + MMFF). For each size a
batch of ``--batch-size`` molecules is featurized and saved, then a fresh process loads it and
the model and runs one training step (forward + backward, 2D+3D mode, denoising loss on) and
one inference pass; the peak resident memory above that process's peak before the step is
read from ``getrusage``. Attention over all atom pairs makes the pair tensors grow as N^2.

Usage::

    python benchmarks/transformer_m_memory.py --out benchmarks/results/transformer_m_memory.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)


def pick(size: int, count: int) -> list[str]:
    """SMILES of ``count`` PubChem compounds with ``size`` +- 2 heavy atoms (first in file order)."""
    from rdkit import Chem

    from molfm.data.sources import get_source

    frame = get_source("pubchem-names").load(None)
    chosen = []
    for smiles in frame["smiles"]:
        mol = Chem.MolFromSmiles(smiles) if isinstance(smiles, str) else None
        if mol is not None and abs(mol.GetNumAtoms() - size) <= 2 and "." not in smiles:
            chosen.append(smiles)
            if len(chosen) == count:
                break
    return chosen


def build_batch(size: int, batch_size: int, path: Path) -> int:
    """Featurize ``batch_size`` molecules of about ``size`` heavy atoms with conformers; save."""
    import torch

    from molfm.chem.conformers import ConformerOptions, generate_conformers
    from molfm.chem.featurize import mol_to_data
    from molfm.chem.parse import parse_smiles

    smiles = pick(size, batch_size * 3)
    graphs = []
    for result in generate_conformers(smiles, ConformerOptions(timeout_s=20), processes=2):
        if result.positions is not None and len(graphs) < batch_size:
            graphs.append(mol_to_data(parse_smiles(result.smiles), pos=result.positions))
    torch.save(graphs, path)
    return len(graphs)


def measure(path: Path) -> dict:
    """In a fresh process: load the molecules and the model, then one training step and one
    inference pass; peak RSS above the process's own peak before the step."""
    import torch

    from molfm.data.dense import DenseGraphDataset, collate_dense
    from molfm.systems.transformer_m.config import TransformerMConfig
    from molfm.systems.transformer_m.model import TransformerM

    torch.set_num_threads(2)
    graphs = torch.load(path, weights_only=False)
    dataset = DenseGraphDataset(graphs, pair_structure=TransformerM.pair_structure)
    batch = collate_dense([dataset[i] for i in range(len(dataset))])
    model = TransformerM(TransformerMConfig.small()).train()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = model(batch, mode="2d3d")
    loss = out.graph_embedding.square().mean() + model.auxiliary_loss(batch, out)
    loss.backward()
    train_s = time.perf_counter() - start
    train_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model.eval()
    with torch.no_grad():
        start = time.perf_counter()
        model(batch)
        infer_s = time.perf_counter() - start
    infer_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    atoms = batch.node_mask.sum(1).float()
    return {
        "heavy_atoms_mean": float(atoms.mean()),
        "padded_atoms": int(batch.node_mask.shape[1]),
        "batch": len(graphs),
        "train_step_s": train_s,
        "train_peak_rss_mib": (train_peak - base) / 1024,
        "inference_s": infer_s,
        "inference_peak_rss_mib": (infer_peak - base) / 1024,
        "inference_molecules_per_s": len(graphs) / infer_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--measure", type=Path, help="(internal) measure a saved batch")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/transformer_m_memory.json")
    )
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            path = Path(tmp) / f"batch_{size}.pt"
            build_batch(size, args.batch_size, path)
            cmd = [sys.executable, __file__, "--measure", str(path)]
            output = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append({"size_bin": size} | json.loads(output.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"model": "TransformerMConfig.small()", "mode": "2d3d", "rows": rows}
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
