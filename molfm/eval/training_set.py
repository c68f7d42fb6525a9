"""Canonical SMILES of a training set, computed once and cached (novelty, memorization).

Comparing generated molecules with 1.58M MOSES training SMILES needs both sides in the same
canonical form. Canonicalizing the training side takes minutes, so the result is stored in
``<cache>/canonical/`` under a key made of the source fingerprint (pinned wheel sha256 or file
sha256, subset, options) and the RDKit version (canonical SMILES can change between versions).
"""

from __future__ import annotations

import gzip
import os

import rdkit

from molfm.atomic import atomic_writer
from molfm.chem.parse import canonical_smiles
from molfm.data.fetch import cache_dir
from molfm.data.sources import resolve_source
from molfm.eval.moses_features import parallel_map

__all__ = ["training_set"]


def training_set(
    data: str, smiles_column: str = "smiles", *, n_jobs: int | None = None
) -> frozenset[str]:
    """Canonical SMILES of the valid molecules of ``data`` (``"moses"``: its train subset).

    Parameters
    ----------
    data
        A registered source name or a CSV path.
    n_jobs
        Worker processes for the first (uncached) computation; default: all cores.
    """
    source = resolve_source(data, smiles_column=smiles_column)
    subset = "train" if "train" in source.info.subsets else None
    key = source.fingerprint(subset)[:20]
    path = cache_dir() / "canonical" / f"{source.info.name}-{key}-rdkit{rdkit.__version__}.txt.gz"
    if path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return frozenset(line.rstrip("\n") for line in fh)
    smiles = [s for s in source.load(subset)["smiles"].tolist() if s]
    canonical = parallel_map(canonical_smiles, smiles, n_jobs or os.cpu_count() or 1)
    result = frozenset(c for c in canonical if c is not None)
    with atomic_writer(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as fh:
        fh.writelines(f"{c}\n" for c in sorted(result))
    return result
