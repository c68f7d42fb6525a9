"""Cleaner and more naming data for MolCA: OPSIN-verified names, the second PubChem table and
verified synonyms, all for training only.

* **OPSIN filter.** A training name counts only if OPSIN parses it back to its molecule
  (standard InChIKey; PubChem's lower-case locants retried, :func:`~molfm.eval.text.opsin_name_check`).
  About 3.5% of PubChem's IUPAC names fail; a model cannot learn a naming rule from them.
* **"pubchem small".** The ``chemicals`` wheel's second table (``pubchem-names-small``) adds
  molecules that the large one lacks; any whose InChIKey is in a split of the large table
  (train, validation or test) is dropped, so nothing leaks into evaluation.
* **Synonyms.** Other names of a training molecule that carry locants (a digit) and that OPSIN
  maps back to it become extra training pairs (at most ``synonyms_per_molecule`` each; the
  first ``2 * synonyms_per_molecule`` such names of each molecule are checked: a molecule has
  about 15 of them, and OPSIN takes ~20 ms a name).

OPSIN (Java) checks are the slow part: each ``(InChIKey, name)`` verdict is kept in a cache
file (``opsin_verdicts.parquet`` under the prepared data set), so a second run only reads it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molfm.atomic import atomic_writer
from molfm.systems.molca.data import MolTextDataset, MolTextSplits, _inchikey

__all__ = ["OpsinVerdicts", "naming_training_set"]


class OpsinVerdicts:
    """OPSIN round-trip verdicts, cached in a parquet file (``key``, ``name``, ``same``)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self.known: dict[tuple[str, str], bool] = {}
        if self.path is not None and self.path.exists():
            frame = pd.read_parquet(self.path)
            self.known = dict(zip(zip(frame["key"], frame["name"]), frame["same"]))
        self.checked = 0

    def same_structure(self, names: Sequence[str], smiles: Sequence[str]) -> np.ndarray:
        """Whether OPSIN gives back each molecule from its name (one OPSIN run for the names
        not in the cache)."""
        from molfm.eval.text import opsin_name_check

        keys = [_inchikey(s) for s in smiles]
        todo = [i for i, (k, n) in enumerate(zip(keys, names)) if (k, n) not in self.known]
        if todo:
            report = opsin_name_check([names[i] for i in todo], [smiles[i] for i in todo])
            for i, check in zip(todo, report.checks):
                self.known[(keys[i], names[i])] = bool(check.same_structure)
            self.checked += len(todo)
            self.save()
        return np.array([self.known[(k, n)] for k, n in zip(keys, names)], dtype=bool)

    def save(self) -> None:
        if self.path is None:
            return
        keys, names = zip(*self.known) if self.known else ((), ())
        frame = pd.DataFrame({"key": keys, "name": names, "same": list(self.known.values())})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(self.path) as tmp:
            frame.to_parquet(tmp, index=False)


def _has_locant(name: str) -> bool:
    return any(c.isdigit() for c in name)


class _Graphs:
    """Graphs of several indexable sources, each read at chosen indices (lazy)."""

    def __init__(self, parts: Sequence[tuple[Any, Sequence[int]]]) -> None:
        self.refs = [(source, int(i)) for source, index in parts for i in index]

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int):
        source, i = self.refs[index]
        return source[i]


def _small_table(
    seen: set[str], source: Any = None, root: str | Path | None = None
) -> tuple[MolTextDataset, dict[str, int]]:
    """The "pubchem small" molecules with an IUPAC name whose InChIKey no split holds."""
    from molfm.data.dataset import GraphStore, MolGraphDataset
    from molfm.data.prepare import prepare_dataset
    from molfm.data.sources.pubchem_names import PubChemNamesSmallSource

    source = source if source is not None else PubChemNamesSmallSource()
    prepared = prepare_dataset(source, on_invalid="skip", progress=False, root=root)
    table = prepared.dataset.read_frame(["row", "canonical_smiles"])
    raw = source.load().iloc[table["row"].to_numpy()].reset_index(drop=True)
    keep, kept_keys = [], set()
    for i, (smiles, name) in enumerate(zip(table["canonical_smiles"], raw["iupac_name"])):
        key = _inchikey(smiles)
        if isinstance(name, str) and key not in seen and key not in kept_keys:
            keep.append(i)
            kept_keys.add(key)
    index = np.asarray(keep, dtype=np.int64)
    store = GraphStore(prepared.dataset, target_columns=[])
    dataset = MolTextDataset(
        MolGraphDataset(store, index),
        [table["canonical_smiles"][i] for i in keep],
        [raw["iupac_name"][i] for i in keep],
        ids=[f"small:{int(table['row'][i])}" for i in keep],
    )
    counts = {"small_rows": len(raw), "small_new_molecules": len(keep)}
    return dataset, counts


def naming_training_set(
    splits: MolTextSplits,
    *,
    opsin_filter: bool = True,
    add_small_table: bool = True,
    synonyms_per_molecule: int = 0,
    cache: str | Path | None = None,
    small_source: Any = None,
    root: str | Path | None = None,
) -> tuple[MolTextDataset, dict[str, Any]]:
    """The training pairs of an IUPAC-naming run, cleaned and extended (module docstring).

    Parameters
    ----------
    splits
        ``pubchem_names_splits("iupac")``; validation and test are left as they are.
    opsin_filter, add_small_table, synonyms_per_molecule
        What to do; 0 synonyms adds none.
    cache
        The OPSIN verdict file (default: ``opsin_verdicts.parquet`` beside the data set).
    small_source, root
        The small table's source (default: the wheel's) and prepared-dataset root (tests).

    Returns
    -------
    (MolTextDataset, dict)
        The training pairs (IUPAC pairs first, then the small table's, then synonyms) and
        the counts (kept, dropped, added) and seconds.
    """
    start = time.perf_counter()
    train = splits.train
    if cache is None and splits.info.get("dataset"):
        cache = Path(splits.info["dataset"]) / "opsin_verdicts.parquet"
    verdicts = OpsinVerdicts(cache)
    info: dict[str, Any] = {"train_pairs": len(train)}
    keep = np.arange(len(train))
    if opsin_filter:
        ok = verdicts.same_structure(train.texts, train.smiles)
        keep = np.flatnonzero(ok)
        info["opsin_dropped"] = int((~ok).sum())
    graphs: list[tuple[Any, Sequence[int]]] = [(train.graphs, keep)]
    smiles = [train.smiles[i] for i in keep]
    texts = [train.texts[i] for i in keep]
    ids: list[Any] = [train.ids[i] for i in keep]
    if add_small_table:
        seen = {_inchikey(s) for part in (train, splits.val, splits.test) for s in part.smiles}
        small, counts = _small_table(seen, small_source, root)
        info |= counts
        if opsin_filter and len(small):
            ok = verdicts.same_structure(small.texts, small.smiles)
            info["small_opsin_dropped"] = int((~ok).sum())
            small_keep = np.flatnonzero(ok)
        else:
            small_keep = np.arange(len(small))
        graphs.append((small.graphs, small_keep))
        smiles += [small.smiles[i] for i in small_keep]
        texts += [small.texts[i] for i in small_keep]
        ids += [small.ids[i] for i in small_keep]
    if synonyms_per_molecule > 0:
        owners, candidates = [], []
        for i in range(len(train)):  # OPSIN costs ~20 ms a name: check 2 per kept synonym
            others = [n for n in train.names[i] if n != train.texts[i] and _has_locant(n)]
            others = others[: 2 * synonyms_per_molecule]
            owners += [i] * len(others)
            candidates += others
        ok = verdicts.same_structure(candidates, [train.smiles[i] for i in owners])
        taken: dict[int, int] = {}
        picked = []
        for owner, name, good in zip(owners, candidates, ok):
            if good and taken.get(owner, 0) < synonyms_per_molecule:
                taken[owner] = taken.get(owner, 0) + 1
                picked.append((owner, name))
        info |= {"synonym_candidates": len(candidates), "synonyms_verified": int(ok.sum())}
        info["synonym_pairs_added"] = len(picked)
        graphs.append((train.graphs, [o for o, _ in picked]))
        smiles += [train.smiles[o] for o, _ in picked]
        texts += [name for _, name in picked]
        ids += [f"synonym:{train.ids[o]}" for o, _ in picked]
    dataset = MolTextDataset(_Graphs(graphs), smiles, texts, ids=ids)
    info |= {
        "train_pairs_out": len(dataset),
        "opsin_checked_now": verdicts.checked,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return dataset, info
