"""Molecular properties used across molfm (generation metrics, pair-tuning, data reports).

All functions take a sanitized RDKit ``Mol`` and return a float (or a dict for counts).
:data:`PROPERTIES` is the one registry of named per-molecule properties (``qed``, ``logp``,
``sa``, ``mw``, ``plogp``); :func:`get_property` looks a name up. The MOSES metrics and the
pair-tuning oracles take their functions from it.

SA score is Ertl & Schuffenhauer's synthetic accessibility score from RDKit Contrib, the
same implementation (and fragment-score table) MOSES uses.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from types import ModuleType

from rdkit import Chem
from rdkit.Chem import QED, Crippen, Descriptors, Fragments, RDConfig

__all__ = [
    "PROPERTIES",
    "get_property",
    "qed",
    "logp",
    "sa_score",
    "molecular_weight",
    "penalized_logp",
    "functional_group_counts",
    "FUNCTIONAL_GROUPS",
]


@functools.cache
def _sascorer() -> ModuleType:
    path = os.path.join(RDConfig.RDContribDir, "SA_Score", "sascorer.py")
    if not os.path.exists(path):
        raise ImportError(f"RDKit Contrib SA_Score not found at {path}")
    spec = importlib.util.spec_from_file_location("molfm_sascorer", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def qed(mol: Chem.Mol) -> float:
    """Quantitative estimate of drug-likeness (Bickerton et al. 2012), in [0, 1]."""
    return float(QED.qed(mol))


def logp(mol: Chem.Mol) -> float:
    """Wildman-Crippen logP."""
    return float(Crippen.MolLogP(mol))


def molecular_weight(mol: Chem.Mol) -> float:
    """Average molecular weight in g/mol (implicit hydrogens included)."""
    return float(Descriptors.MolWt(mol))


def sa_score(mol: Chem.Mol) -> float:
    """Synthetic accessibility score, 1 (easy) to 10 (hard), RDKit Contrib implementation."""
    return float(_sascorer().calculateScore(mol))


def _largest_ring_size(mol: Chem.Mol) -> int:
    rings = mol.GetRingInfo().AtomRings()
    return max((len(r) for r in rings), default=0)


def penalized_logp(mol: Chem.Mol) -> float:
    """Penalized logP as used in molecule optimization (JT-VAE, GP-MoLFormer pair-tuning).

    ``logP - SA - max(largest_ring_size - 6, 0)``, unnormalized (the raw form most
    optimization papers report; JT-VAE's z-scored variant differs by constants).
    """
    ring_penalty = max(_largest_ring_size(mol) - 6, 0)
    return logp(mol) - sa_score(mol) - ring_penalty


PROPERTIES: dict[str, Callable[[Chem.Mol], float]] = {
    "qed": qed,
    "logp": logp,
    "sa": sa_score,
    "mw": molecular_weight,
    "plogp": penalized_logp,
}
"""Named per-molecule properties: name -> function of a sanitized ``Mol`` returning a float."""


def get_property(name: str) -> Callable[[Chem.Mol], float]:
    """The registered property function called ``name`` (case-insensitive).

    Parameters
    ----------
    name
        A key of :data:`PROPERTIES`, e.g. ``"QED"`` or ``"plogp"``.

    Returns
    -------
    Callable
        A function of a sanitized ``Mol`` returning a float.

    Raises
    ------
    KeyError
        If no property has that name; the message lists the known names.
    """
    try:
        return PROPERTIES[name.lower()]
    except KeyError:
        raise KeyError(
            f"unknown property {name!r}; known: {', '.join(sorted(PROPERTIES))}"
        ) from None


def _fragment_functions() -> dict[str, Callable]:
    return {
        name.removeprefix("fr_"): getattr(Fragments, name)
        for name in sorted(dir(Fragments))
        if name.startswith("fr_") and callable(getattr(Fragments, name))
    }


FUNCTIONAL_GROUPS: tuple[str, ...] = tuple(_fragment_functions())


def functional_group_counts(mol: Chem.Mol) -> dict[str, int]:
    """Counts of RDKit's 85 fragment descriptors (``Fragments.fr_*``), keyed without ``fr_``."""
    return {name: int(fn(mol)) for name, fn in _fragment_functions().items()}
