"""MOSES medicinal-chemistry filters (the ``Filters`` metric).

A molecule passes when, in this order (MOSES ``mol_passes_filters``):

1. no ring has 8 or more atoms;
2. no atom carries a formal charge;
3. every atom is one of C, N, S, O, F, Cl, Br, H;
4. the molecule with explicit hydrogens matches none of the 22 MCF (medicinal chemistry
   filters) and 480 PAINS (WEHI) SMARTS patterns MOSES ships;
5. its non-isomeric SMILES is non-empty and parses again.

The SMARTS tables come from the pinned molsets wheel (``moses/metrics/mcf.csv`` and
``moses/metrics/wehi_pains.csv``) through :func:`molfm.data.sources.moses.filter_alerts`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from rdkit import Chem, rdBase

from molfm.data.sources.moses import filter_alerts

__all__ = [
    "MOSES_ALLOWED_ATOMS",
    "FilterPattern",
    "filter_patterns",
    "matching_patterns",
    "mol_passes_filters",
    "fraction_passes_filters",
]

MOSES_ALLOWED_ATOMS: frozenset[str] = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})
MAX_RING_SIZE = 7  # rings of 8 or more atoms fail


class FilterPattern:
    """One named SMARTS alert (MCF or PAINS)."""

    __slots__ = ("name", "smarts", "query")

    def __init__(self, name: str, smarts: str) -> None:
        self.name = name
        self.smarts = smarts
        query = Chem.MolFromSmarts(smarts)
        if query is None:
            raise ValueError(f"filter {name!r}: invalid SMARTS {smarts!r}")
        self.query = query

    def __repr__(self) -> str:
        return f"FilterPattern({self.name!r}, {self.smarts!r})"


@functools.cache
def filter_patterns() -> tuple[FilterPattern, ...]:
    """The MCF and PAINS alerts MOSES applies (22 + 480 patterns), parsed once."""
    tables = filter_alerts()
    return tuple(FilterPattern(name, smarts) for name, smarts in (*tables["mcf"], *tables["pains"]))


def _largest_ring(mol: Chem.Mol) -> int:
    return max((len(ring) for ring in mol.GetRingInfo().AtomRings()), default=0)


def matching_patterns(mol: Chem.Mol) -> list[str]:
    """Names of the MCF/PAINS alerts that ``mol`` (hydrogens made explicit) matches."""
    with_h = Chem.AddHs(mol)
    return [p.name for p in filter_patterns() if with_h.HasSubstructMatch(p.query)]


def mol_passes_filters(
    mol: Chem.Mol | None, *, allowed: frozenset[str] | set[str] | None = None
) -> bool:
    """Whether a molecule passes the MOSES filters (see the module docstring).

    Parameters
    ----------
    mol
        A sanitized molecule; ``None`` (an invalid molecule) fails.
    allowed
        Allowed element symbols; defaults to :data:`MOSES_ALLOWED_ATOMS`.
    """
    if mol is None:
        return False
    allowed = MOSES_ALLOWED_ATOMS if allowed is None else allowed
    if _largest_ring(mol) > MAX_RING_SIZE:
        return False
    atoms = list(mol.GetAtoms())
    if any(atom.GetFormalCharge() != 0 for atom in atoms):
        return False
    if any(atom.GetSymbol() not in allowed for atom in atoms):
        return False
    with_h = Chem.AddHs(mol)
    if any(with_h.HasSubstructMatch(p.query) for p in filter_patterns()):
        return False
    smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
    if not smiles:
        return False
    with rdBase.BlockLogs():
        return Chem.MolFromSmiles(smiles) is not None


def fraction_passes_filters(mols: Sequence[Chem.Mol | None]) -> float:
    """Fraction of ``mols`` passing :func:`mol_passes_filters` (``None`` entries fail)."""
    if len(mols) == 0:
        raise ValueError("fraction_passes_filters needs at least one molecule")
    return float(np.mean([mol_passes_filters(mol) for mol in mols]))
