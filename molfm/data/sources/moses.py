"""MOSES benchmark SMILES (train / test / scaffold-test) and the FCD reference statistics.

The files come from the PyPI wheel ``molsets==0.3.1``, which cannot be installed on modern Python
(it pins pomegranate 0.12), so molfm reads them straight from the verified wheel.

The reference statistics (``*_stats.npz``) are one pickled object array holding a dict of dicts
with numpy arrays, Python lists and :class:`collections.Counter` objects, so ``np.load`` needs
``allow_pickle=True``, which can execute arbitrary code. :func:`raw_reference_stats` instead
reads the ``.npy`` header itself and unpickles with an allow-list of the globals the file uses
(numpy arrays and dtypes, ``codecs.encode`` and ``collections.Counter``); :func:`reference_stats`
flattens the result into plain arrays, and :class:`molfm.eval.moses_reference.MosesReference`
is built from it.

:func:`filter_alerts` returns the SMARTS tables behind MOSES's ``Filters`` metric (``mcf.csv``
and ``wehi_pains.csv`` of the same wheel) as ``(name, smarts)`` rows; the metric itself is
:mod:`molfm.eval.filters`.
"""

from __future__ import annotations

import codecs
import csv
import io
import pickle
import zipfile
from collections import Counter
from os import PathLike
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from molfm.data.fetch import open_member
from molfm.data.sources.base import SourceError, SourceInfo, WheelSource, register_source

__all__ = [
    "MosesSource",
    "raw_reference_stats",
    "reference_stats",
    "filter_alerts",
    "STATS_MEMBERS",
    "FILTER_MEMBERS",
]

_DATA = "moses/dataset/data"

STATS_MEMBERS: dict[str, str] = {
    "test": f"{_DATA}/test_stats.npz",
    "test_scaffolds": f"{_DATA}/test_scaffolds_stats.npz",
}

FILTER_MEMBERS: dict[str, str] = {
    "mcf": "moses/metrics/mcf.csv",
    "pains": "moses/metrics/wehi_pains.csv",
}


@register_source("moses", "molsets")
class MosesSource(WheelSource):
    """MOSES: ZINC "clean leads" SMILES split into train / test / test_scaffolds.

    The loaded frame has one column, ``smiles``, with the strings of the ``SMILES`` column as
    stored (MOSES SMILES are canonical, non-isomeric, neutral, 250-350 Da).
    """

    PACKAGE: ClassVar[str] = "molsets"
    FORMAT_VERSION: ClassVar[int] = 1
    MEMBERS: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": (f"{_DATA}/train.csv.gz",),
        "test": (f"{_DATA}/test.csv.gz",),
        "test_scaffolds": (f"{_DATA}/test_scaffolds.csv.gz",),
    }
    info = SourceInfo(
        name="moses",
        description=(
            "Molecular Sets (MOSES) benchmark for molecular generation: 1,584,663 train, "
            "176,074 test and 176,225 scaffold-split test SMILES filtered from ZINC Clean Leads."
        ),
        provenance=(
            "PyPI wheel molsets==0.3.1 (molsets-0.3.1-py3-none-any.whl, sha256 pinned in "
            "molfm.data.fetch), members moses/dataset/data/{train,test,test_scaffolds}.csv.gz "
            "and {test,test_scaffolds}_stats.npz; upstream https://github.com/molecularsets/moses"
        ),
        license=(
            "MIT (molsets wheel LICENSE, Copyright 2018 Insilico Medicine; METADATA License: MIT). "
            "The molecules derive from ZINC (Irwin & Shoichet), which has its own terms of use."
        ),
        citation=(
            "Polykovskiy et al., Molecular Sets (MOSES): A Benchmarking Platform for Molecular "
            "Generation Models, Frontiers in Pharmacology 11:565644 (2020), "
            "doi:10.3389/fphar.2020.565644"
        ),
        subsets=("train", "test", "test_scaffolds"),
        default_subset="train",
        targets=(),
        units={},
        task="generation",
    )

    def _load(self, subset: str) -> pd.DataFrame:
        with self.open_files(subset) as (stream,):
            raw = pd.read_csv(stream, dtype=str, na_filter=False)
        if "SMILES" not in raw.columns:
            raise SourceError(f"moses/{subset}: no 'SMILES' column (found {list(raw.columns)})")
        return pd.DataFrame({"smiles": raw["SMILES"]})


def _allowed_globals() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
        ("collections", "Counter"): Counter,
    }


class _StatsUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the globals a MOSES stats file legitimately contains."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return allowed[(module, name)]


def _read_pickled_npy(raw: bytes) -> Any:
    """Return the Python object held by a 0-d object ``.npy`` file, via :class:`_StatsUnpickler`."""
    buffer = io.BytesIO(raw)
    version = np.lib.format.read_magic(buffer)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(buffer)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(buffer)
    if dtype != np.dtype(object) or shape != ():
        raise SourceError(f"expected a pickled 0-d object array, got {dtype} {shape}")
    return _StatsUnpickler(buffer, encoding="latin1").load()


def _flatten(stats: dict[str, Any]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for metric, parts in stats.items():
        for key, value in parts.items():
            name = f"{metric}/{key}"
            if isinstance(value, Counter):
                items = sorted(value.items())
                out[f"{name}/keys"] = np.array([k for k, _ in items], dtype=object)
                out[f"{name}/counts"] = np.array([c for _, c in items], dtype=np.int64)
            else:
                out[name] = np.asarray(value)
    return out


def raw_reference_stats(
    subset: str = "test", *, path: str | PathLike[str] | None = None
) -> dict[str, dict[str, Any]]:
    """MOSES reference statistics of ``test`` or ``test_scaffolds`` as MOSES stored them.

    The pickle is read with an unpickler that can build only numpy arrays and dtypes,
    ``codecs.encode`` and :class:`collections.Counter`; any other global raises
    :class:`pickle.UnpicklingError`. ``subset`` and ``path`` are as in :func:`reference_stats`.

    Returns
    -------
    dict
        ``{metric: {field: value}}``, e.g. ``stats["FCD"]["mu"]`` (an array),
        ``stats["logP"]["values"]`` (an array or list), ``stats["Frag"]["frag"]`` (a Counter);
        see :func:`reference_stats` for the fields.
    """
    if subset not in STATS_MEMBERS:
        raise ValueError(f"no MOSES reference stats for {subset!r}; choose {list(STATS_MEMBERS)}")
    if path is not None:
        with open(path, "rb") as fh:
            blob = fh.read()
    else:
        with open_member(MosesSource.PACKAGE, STATS_MEMBERS[subset]) as fh:
            blob = fh.read()
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        if "stats.npy" not in archive.namelist():
            raise SourceError(f"stats file has no 'stats' array: {archive.namelist()}")
        stats = _read_pickled_npy(archive.read("stats.npy"))
    if isinstance(stats, np.ndarray) and stats.shape == ():
        stats = stats.item()
    if not isinstance(stats, dict):
        raise SourceError(f"expected a dict of statistics, got {type(stats).__name__}")
    return stats


def reference_stats(
    subset: str = "test", *, path: str | PathLike[str] | None = None
) -> dict[str, np.ndarray]:
    """MOSES reference statistics of ``test`` or ``test_scaffolds`` as flat numpy arrays.

    Parameters
    ----------
    subset
        ``"test"`` or ``"test_scaffolds"``.
    path
        A local ``.npz`` in the MOSES format to read instead of the wheel member.

    Returns
    -------
    dict
        Keys ``"<metric>/<field>"`` as stored by MOSES 0.3.1: ``FCD/mu`` (float32 [512]) and
        ``FCD/sigma`` (float64 [512, 512]) of ChemNet activations; ``SNN/fps`` (uint8
        [n_molecules, 1024] Morgan bits); ``logP/values``, ``SA/values``, ``QED/values``,
        ``weight/values`` (float64 [n_molecules]). The ``Frag/frag`` and ``Scaf/scaf`` counters
        become ``Frag/frag/keys`` / ``Scaf/scaf/keys`` (object arrays of SMILES, sorted) with
        ``.../counts`` (int64).
    """
    return _flatten(raw_reference_stats(subset, path=path))


def _csv_rows(member: str) -> list[list[str]]:
    with open_member(MosesSource.PACKAGE, member) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        return [row for row in csv.reader(text) if row]


def filter_alerts() -> dict[str, list[tuple[str, str]]]:
    """The structural alerts of MOSES's ``Filters`` metric, read from the molsets wheel.

    Returns
    -------
    dict
        ``{"mcf": rows, "pains": rows}``, each row a ``(name, smarts)`` pair of stripped strings
        in file order: the 22 medicinal-chemistry filters of ``mcf.csv`` (columns ``names``,
        ``smarts``) and the 480 PAINS (WEHI) alerts of ``wehi_pains.csv`` (no header; columns
        ``smarts``, ``<regId=NAME>``).

    Raises
    ------
    SourceError
        If ``mcf.csv`` lacks its ``names`` or ``smarts`` column.
    """
    header, *body = _csv_rows(FILTER_MEMBERS["mcf"])
    if "names" not in header or "smarts" not in header:
        raise SourceError(f"{FILTER_MEMBERS['mcf']}: expected 'names' and 'smarts' columns")
    name_col, smarts_col = header.index("names"), header.index("smarts")
    mcf = [(row[name_col].strip(), row[smarts_col].strip()) for row in body]
    pains = [
        (reg_id.strip().removeprefix("<regId=").removesuffix(">"), smarts.strip())
        for smarts, reg_id in _csv_rows(FILTER_MEMBERS["pains"])
    ]
    return {"mcf": mcf, "pains": pains}
