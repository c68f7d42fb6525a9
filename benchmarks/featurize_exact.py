"""Exactness of the 2D featurizer on many real molecules, not only the test fixtures.

For each molecule: molfm's ``featurize`` against OGB's ``smiles2graph`` (node and edge features,
edge order), and the binary-format reader (``molfm.chem.rdkit_pickle``) against RDKit's getters
(every raw value). Reports how many molecules were compared, how many the reader declined (and
so went through the getters) and every mismatch.

    python benchmarks/featurize_exact.py --moses 80000 --pubchem all \\
        --out benchmarks/results/featurize_exact.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from ogb.utils.mol import smiles2graph
from rdkit import Chem, RDLogger

from molfm.chem.featurize import _raw_arrays_from_getters, featurize
from molfm.chem.rdkit_pickle import read_raw_arrays
from molfm.data.sources import get_source


def molecules(n_moses: int, pubchem: str, seed: int) -> list[tuple[str, str]]:
    """(source, SMILES): a seeded sample of MOSES train and the PubChem name tables."""
    rng = np.random.default_rng(seed)
    moses = get_source("moses").load("train")["smiles"].tolist()
    picked = [("moses", moses[i]) for i in rng.choice(len(moses), n_moses, replace=False)]
    for name in ("pubchem-names", "pubchem-names-small"):
        table = get_source(name).load("all")["smiles"].dropna().tolist()
        if pubchem != "all":
            table = table[: int(pubchem)]
        picked += [(name, s) for s in table]
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moses", type=int, default=80_000)
    parser.add_argument("--pubchem", default="all", help="'all' or the first N of each table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/featurize_exact.json"))
    args = parser.parse_args()
    RDLogger.DisableLog("rdApp.*")  # OGB parses again; unparsable rows are counted below

    start = time.perf_counter()
    counts = {"molecules": 0, "unparsable": 0, "compared_with_ogb": 0, "read_from_binary": 0}
    declined: dict[str, int] = {}
    mismatches: list[dict] = []
    for source, smiles in molecules(args.moses, args.pubchem, args.seed):
        counts["molecules"] += 1
        mol = Chem.MolFromSmiles(smiles)
        if mol is None or mol.GetNumAtoms() == 0:
            counts["unparsable"] += 1
            continue
        raw = read_raw_arrays(mol)
        if raw is None:
            declined[source] = declined.get(source, 0) + 1
        else:
            counts["read_from_binary"] += 1
            reference = _raw_arrays_from_getters(mol)
            if not all(np.array_equal(a, b) for a, b in zip(raw, reference)):
                mismatches.append({"source": source, "smiles": smiles, "against": "getters"})
        graph, ogb = featurize(mol), smiles2graph(smiles)
        counts["compared_with_ogb"] += 1
        same = (
            np.array_equal(graph.x, ogb["node_feat"])
            and np.array_equal(graph.edge_index, ogb["edge_index"])
            and np.array_equal(graph.edge_attr, ogb["edge_feat"])
        )
        if not same:
            mismatches.append({"source": source, "smiles": smiles, "against": "ogb"})
    report = {
        **counts,
        "declined_by_reader": declined,
        "mismatches": len(mismatches),
        "mismatch_examples": mismatches[:20],
        "seconds": time.perf_counter() - start,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "mismatch_examples"}, indent=2))


if __name__ == "__main__":
    main()
