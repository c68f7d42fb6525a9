"""B3DB: blood-brain-barrier permeability, classification (BBB+/BBB-) and regression (logBB).

Read from ``B3DB/B3DB_classification.tsv`` (7,807 compounds) and ``B3DB/B3DB_regression.tsv``
(1,058 compounds) in the PyPI wheel ``qc-b3db==1.1.1``. The wheel's METADATA declares
``License-Expression: CC0-1.0`` and ships the CC0 1.0 Universal legal code as its LICENSE.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from molfm.data.sources.base import (
    SourceError,
    SourceInfo,
    WheelSource,
    register_source,
    to_float,
)

__all__ = ["B3DBSource", "normalize_cids"]

_LABELS = {"BBB+": 1.0, "BBB-": 0.0}


def normalize_cids(values: pd.Series) -> list[str | None]:
    """PubChem CIDs as ``"|"``-joined integer strings, in first-seen order without repeats.

    B3DB stores one CID as a float (``"5339.0"``) in the classification file and a
    ``"|"``-terminated list with repeats (``"5339.0|5339.0|"``, ``"nan|nan|"``) in the
    regression file; both become ``"5339"``. Rows without a CID become ``None``.
    """
    out: list[str | None] = []
    for cell in values:
        seen: list[str] = []
        for part in str(cell).split("|"):
            part = part.strip()
            if not part or part.lower() == "nan":
                continue
            cid = str(int(float(part)))
            if cid not in seen:
                seen.append(cid)
        out.append("|".join(seen) or None)
    return out


def _text(values: pd.Series) -> pd.Series:
    """Strings with blank cells as missing values."""
    stripped = values.str.strip()
    return stripped.where(stripped.ne(""), None)


@register_source("b3db")
class B3DBSource(WheelSource):
    """B3DB subsets ``classification`` (target ``bbb``: 1.0 BBB+, 0.0 BBB-) and ``regression``
    (target ``logbb``, log10 of the brain/blood concentration ratio).

    Other columns: ``compound_name``, ``iupac_name``, ``cid`` (see :func:`normalize_cids`),
    ``inchi``, ``group`` (B3DB reliability group A-D), ``reference``, ``comments``, ``b3db_no``
    (B3DB's ``NO.``), and in ``classification`` also ``logbb`` (NaN where unmeasured) and
    ``threshold``. A label other than BBB+/BBB- would give NaN ``bbb`` (none occur in 1.1.1).
    ``info.targets``/``info.task`` describe the default subset plus ``logbb``; use
    :meth:`targets_for` and :meth:`task_for` per subset.

    File keys for ``files=``: ``"classification"`` and ``"regression"``.
    """

    PACKAGE: ClassVar[str] = "qc-b3db"
    FORMAT_VERSION: ClassVar[int] = 1
    MEMBERS: ClassVar[dict[str, tuple[str, ...]]] = {
        "classification": ("B3DB/B3DB_classification.tsv",),
        "regression": ("B3DB/B3DB_regression.tsv",),
    }
    info = SourceInfo(
        name="b3db",
        description=(
            "Blood-Brain Barrier Database: 7,807 compounds labelled BBB+ or BBB- "
            "(classification) and 1,058 with numerical logBB (regression), curated from 50 "
            "published sources."
        ),
        provenance=(
            "PyPI wheel qc-b3db==1.1.1 (qc_b3db-1.1.1-py3-none-any.whl, sha256 pinned in "
            "molfm.data.fetch), members B3DB/B3DB_classification.tsv and "
            "B3DB/B3DB_regression.tsv; upstream https://github.com/theochem/B3DB"
        ),
        license=(
            "CC0-1.0 (wheel METADATA License-Expression: CC0-1.0; LICENSE is the CC0 1.0 "
            "Universal legal code; B3DB/b3db.py: 'dedicated to the public domain under CC0 1.0')"
        ),
        citation=(
            "Meng, Xi, Huang, Ayers, A curated diverse molecular database of blood-brain barrier "
            "permeability with chemical descriptors, Scientific Data 8:289 (2021), "
            "doi:10.1038/s41597-021-01069-5"
        ),
        subsets=("classification", "regression"),
        default_subset="classification",
        targets=("bbb", "logbb"),
        units={"bbb": "1 = BBB+, 0 = BBB-", "logbb": "log10(C_brain / C_blood)"},
        task="classification",
    )

    def targets_for(self, subset: str | None = None) -> tuple[str, ...]:
        """``("bbb",)`` for classification, ``("logbb",)`` for regression."""
        return ("bbb",) if self.resolve_subset(subset) == "classification" else ("logbb",)

    def task_for(self, subset: str | None = None) -> str:
        """``"classification"`` or ``"regression"``, the subset's name."""
        return self.resolve_subset(subset)

    def _load(self, subset: str) -> pd.DataFrame:
        with self.open_files(subset) as (stream,):
            raw = pd.read_csv(stream, sep="\t", dtype=str, na_filter=False)
        needed = ["NO.", "compound_name", "IUPAC_name", "SMILES", "CID", "logBB", "group"]
        if subset == "classification":
            needed.append("BBB+/BBB-")
        missing = [c for c in needed if c not in raw.columns]
        if missing:
            raise SourceError(
                f"b3db/{subset}: missing columns {missing} (found {list(raw.columns)})"
            )
        frame = pd.DataFrame({"smiles": raw["SMILES"]})
        if subset == "classification":
            frame["bbb"] = raw["BBB+/BBB-"].str.strip().map(_LABELS).astype(np.float64)
        frame["logbb"] = to_float(raw["logBB"], "logBB")
        if "threshold" in raw.columns:
            frame["threshold"] = to_float(raw["threshold"], "threshold")
        frame["compound_name"] = _text(raw["compound_name"])
        frame["iupac_name"] = _text(raw["IUPAC_name"])
        frame["cid"] = pd.Series(normalize_cids(raw["CID"]), dtype=object)
        for column in ("Inchi", "group", "reference", "comments"):
            if column in raw.columns:
                frame[column.lower()] = _text(raw[column])
        frame["b3db_no"] = pd.to_numeric(raw["NO."]).astype(np.int64)
        return frame
