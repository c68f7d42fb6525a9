"""Evaluation metrics: the MOSES generation suite and friends.

The MOSES names are re-exported lazily (``from molfm.eval import compute_moses_metrics``) so
that importing a light sibling module does not load torch, RDKit and ChemNet.
"""

from __future__ import annotations

import importlib
from typing import Any

_MOSES_EXPORTS = (
    "MOSES_METRIC_NAMES",
    "MosesReference",
    "compute_reference",
    "compute_moses_metrics",
    "fraction_valid",
    "remove_invalid",
    "fraction_unique",
    "novelty",
    "internal_diversity",
    "snn",
    "frag_similarity",
    "scaf_similarity",
    "cos_similarity",
    "fraction_passes_filters",
    "mol_passes_filters",
    "fcd_distance",
    "property_distance",
)

__all__ = list(_MOSES_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _MOSES_EXPORTS:
        return getattr(importlib.import_module("molfm.eval.moses"), name)
    raise AttributeError(f"module 'molfm.eval' has no attribute {name!r}")
