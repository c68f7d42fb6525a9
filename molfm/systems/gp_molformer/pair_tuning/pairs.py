"""Property-ordered molecule pairs for pair-tuning (GP-MoLFormer, arXiv 2405.04912).

Pair-tuning learns a soft prompt from pairs ``(source, target)`` of *similar* molecules where
the target has the *better* property value. GP-MoLFormer trained on the paired benchmarks of
Jin et al. (ICLR 2019, "Learning multimodal graph-to-graph translation for molecular
optimization"): ZINC pairs with Tanimoto similarity ``>= 0.4`` (or ``0.6``) in which the target
improves penalized logP, and pairs with source QED in ``[0.7, 0.8]`` and target QED in
``[0.9, 1.0]``. Those pair files are not published in any package registry, so molfm mines
pairs of the same kind from a molecule set it can obtain (MOSES, which is itself a ZINC
subset, or a user CSV) with :func:`make_pairs`:

1. every SMILES is parsed with :func:`molfm.chem.parse.mol_or_none`; rows that do not parse or
   whose property value is not a finite number are dropped (counted in ``frame.attrs["n_dropped"]``), and duplicate
   molecules (same canonical SMILES) are kept once, first occurrence;
2. each molecule gets a **Morgan fingerprint, radius 2, 2048 bits, no chirality** -- the
   fingerprint Jin et al. use for their similarity constraint
   (:func:`molfm.chem.fingerprints.morgan_fingerprints`);
3. the Tanimoto similarity of every ordered pair ``(i, j)`` is computed in row blocks with
   RDKit's ``BulkTanimotoSimilarity`` (:func:`molfm.chem.fingerprints.tanimoto_matrix`, a
   ``[block, N]`` array per block, never the full ``N x N`` matrix);
4. ``(i, j)`` is a pair when ``min_similarity <= sim <= max_similarity``,
   ``value[j] - value[i] > min_improvement`` (the target is strictly better) and, optionally,
   ``value[i]`` lies in ``source_range`` and ``value[j]`` in ``target_range``
   (Jin et al.'s QED task: ``(0.7, 0.8)`` and ``(0.9, 1.0)``);
5. a source with more than ``max_pairs_per_source`` eligible targets keeps a random subset,
   drawn from ``numpy.random.default_rng(seed)``. The draws follow the global row-major order
   of eligible pairs, so the result does not depend on the block size.

Property names (:data:`PROPERTY_FUNCTIONS`, taken from the registry
:data:`molfm.chem.properties.PROPERTIES`): ``"qed"`` (RDKit QED) and ``"plogp"`` (unnormalized
penalized logP, ``logP - SA - ring penalty``, see :func:`molfm.chem.properties.penalized_logp`; Jin et al.'s scorer uses a z-scored variant of
the same three terms, so absolute values differ from theirs). Any other name is looked up as
a numeric column of a user table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from rdkit import Chem

from molfm.chem.fingerprints import morgan_fingerprints, tanimoto, tanimoto_matrix
from molfm.chem.parse import canonical_smiles, mol_or_none
from molfm.chem.properties import PROPERTIES

__all__ = [
    "PROPERTY_FUNCTIONS",
    "SIMILARITY_RADIUS",
    "SIMILARITY_BITS",
    "property_function",
    "compute_property",
    "similarity_fingerprints",
    "tanimoto",  # molfm.chem.fingerprints.tanimoto (r=2, 2048 bits: the pair similarity)
    "make_pairs",
    "lowest_indices",
]

PROPERTY_FUNCTIONS: dict[str, Callable[[Chem.Mol], float]] = {
    name: PROPERTIES[name] for name in ("qed", "plogp")
}
"""The registered properties pair-tuning optimizes (the oracles of Jin et al.'s two tasks)."""

SIMILARITY_RADIUS = 2
SIMILARITY_BITS = 2048
"""Morgan radius / size of the pair-similarity fingerprint (Jin et al. 2019)."""

PAIR_COLUMNS = ["source", "target", "source_value", "target_value", "similarity"]


def property_function(name: str) -> Callable[[Chem.Mol], float] | None:
    """The RDKit property function called ``name`` (case-insensitive), or None."""
    return PROPERTY_FUNCTIONS.get(name.lower())


def compute_property(
    smiles: Sequence[str], name_or_column: str, table: pd.DataFrame | None = None
) -> np.ndarray:
    """Property values of ``smiles``.

    Parameters
    ----------
    smiles
        ``N`` SMILES strings.
    name_or_column
        ``"qed"`` or ``"plogp"`` (computed with RDKit), or the name of a numeric column of
        ``table`` (one row per SMILES, same order).
    table
        The user table holding the column, if any.

    Returns
    -------
    numpy.ndarray
        float64 ``[N]``; NaN where the SMILES does not parse (computed properties) or the cell
        is empty / not a number (columns).

    Raises
    ------
    ValueError
        If ``name_or_column`` is neither a known property nor a column of ``table``.
    """
    fn = property_function(name_or_column)
    if fn is not None:
        out = np.full(len(smiles), np.nan)
        for i, text in enumerate(smiles):
            mol = mol_or_none(text)
            if mol is not None:
                out[i] = fn(mol)
        return out
    if table is not None and name_or_column in table.columns:
        if len(table) != len(smiles):
            raise ValueError(f"table has {len(table)} rows for {len(smiles)} SMILES")
        return pd.to_numeric(table[name_or_column], errors="coerce").to_numpy(np.float64)
    known = ", ".join(sorted(PROPERTY_FUNCTIONS))
    columns = f"; columns: {list(table.columns)}" if table is not None else ""
    raise ValueError(
        f"unknown property {name_or_column!r}: use one of {known} or a numeric column of the "
        f"data{columns}"
    )


def similarity_fingerprints(mols: Sequence[Chem.Mol]) -> list:
    """Morgan radius-2, 2048-bit fingerprints (no chirality) of ``mols``, RDKit bit vectors."""
    return morgan_fingerprints(mols, radius=SIMILARITY_RADIUS, n_bits=SIMILARITY_BITS)


def _in_range(values: np.ndarray, bounds: tuple[float, float] | None) -> np.ndarray:
    if bounds is None:
        return np.ones(len(values), dtype=bool)
    low, high = bounds
    return (values >= low) & (values <= high)


def _clean(
    smiles: Sequence[str], values: np.ndarray
) -> tuple[list[str], np.ndarray, list[Chem.Mol], int]:
    """Drop unparsable / non-finite rows and duplicate molecules (first kept)."""
    kept_smiles: list[str] = []
    kept_values: list[float] = []
    mols: list[Chem.Mol] = []
    seen: set[str] = set()
    dropped = 0
    for text, value in zip(smiles, values, strict=True):
        mol = mol_or_none(text)
        if mol is None or not np.isfinite(value):
            dropped += 1
            continue
        key = canonical_smiles(mol)
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept_smiles.append(text)
        kept_values.append(float(value))
        mols.append(mol)
    return kept_smiles, np.asarray(kept_values, dtype=np.float64), mols, dropped


def make_pairs(
    smiles: Sequence[str],
    values: Sequence[float] | np.ndarray,
    *,
    min_similarity: float = 0.4,
    max_similarity: float = 1.0,
    min_improvement: float = 0.0,
    source_range: tuple[float, float] | None = None,
    target_range: tuple[float, float] | None = None,
    max_pairs_per_source: int | None = 5,
    seed: int = 0,
    block_size: int = 1024,
) -> pd.DataFrame:
    """Mine similar, property-ordered pairs from a molecule set (see the module docstring).

    Parameters
    ----------
    smiles
        ``N`` SMILES strings.
    values
        ``[N]`` property values (higher is better; negate a property to minimize it).
    min_similarity, max_similarity
        Inclusive Tanimoto bounds on the pair's Morgan (r=2, 2048 bits) similarity.
    min_improvement
        A pair needs ``target_value - source_value > min_improvement`` (``>= 0``).
    source_range, target_range
        Optional inclusive ``(low, high)`` bounds on the source / target values.
    max_pairs_per_source
        Keep at most this many targets per source (a seeded random subset); None keeps all.
    seed
        Seed of the subset draws.
    block_size
        Source rows per similarity block; bounds memory to ``block_size * N`` floats.

    Returns
    -------
    pandas.DataFrame
        Columns ``source, target, source_value, target_value, similarity``, ordered by source
        then target position in the cleaned input. ``attrs``: ``n_molecules`` (after
        cleaning), ``n_dropped``, ``fingerprint``.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) != len(smiles):
        raise ValueError(f"{len(smiles)} SMILES but {len(values)} values")
    if min_improvement < 0:
        raise ValueError(f"min_improvement must be >= 0, got {min_improvement}")
    if not 0.0 <= min_similarity <= max_similarity <= 1.0:
        raise ValueError(
            f"need 0 <= min_similarity ({min_similarity}) <= max_similarity ({max_similarity}) <= 1"
        )
    if max_pairs_per_source is not None and max_pairs_per_source < 1:
        raise ValueError(f"max_pairs_per_source must be >= 1, got {max_pairs_per_source}")
    kept, vals, mols, dropped = _clean(smiles, values)
    rng = np.random.default_rng(seed)
    n = len(kept)
    rows_out: list[np.ndarray] = []
    cols_out: list[np.ndarray] = []
    sims_out: list[np.ndarray] = []
    if n:
        fps = similarity_fingerprints(mols)
        source_ok = _in_range(vals, source_range)
        target_ok = _in_range(vals, target_range)
        for start in range(0, n, block_size):
            stop = min(start + block_size, n)
            sim = tanimoto_matrix(fps[start:stop], fps)  # [b, N]
            gain = vals[None, :] - vals[start:stop, None]  # [b, N]
            ok = (sim >= min_similarity) & (sim <= max_similarity) & (gain > min_improvement)
            ok &= source_ok[start:stop, None] & target_ok[None, :]
            ok[np.arange(stop - start), np.arange(start, stop)] = False
            r, c = np.nonzero(ok)  # row-major: the global order of eligible pairs
            keys = rng.random(len(r))
            if max_pairs_per_source is not None and len(r):
                order = np.lexsort((keys, r))
                r_sorted = r[order]
                first = np.searchsorted(r_sorted, r_sorted, side="left")
                keep = order[np.arange(len(order)) - first < max_pairs_per_source]
                keep.sort()
                r, c = r[keep], c[keep]
            rows_out.append(r + start)
            cols_out.append(c)
            sims_out.append(sim[r, c])
    rows = np.concatenate(rows_out) if rows_out else np.zeros(0, dtype=np.int64)
    cols = np.concatenate(cols_out) if cols_out else np.zeros(0, dtype=np.int64)
    sims = np.concatenate(sims_out) if sims_out else np.zeros(0)
    frame = pd.DataFrame(
        {
            "source": [kept[i] for i in rows],
            "target": [kept[j] for j in cols],
            "source_value": vals[rows],
            "target_value": vals[cols],
            "similarity": sims,
        },
        columns=PAIR_COLUMNS,
    )
    frame.attrs.update(
        n_molecules=n,
        n_dropped=dropped,
        fingerprint=f"morgan r={SIMILARITY_RADIUS} {SIMILARITY_BITS} bits, Tanimoto",
    )
    return frame


def lowest_indices(values: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` lowest finite values, lowest first (ties by position).

    The optimization protocol of Jin et al. starts from the test molecules with the lowest
    property values; this picks them.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.argsort(values[finite], kind="stable")]
    return order[:n]
