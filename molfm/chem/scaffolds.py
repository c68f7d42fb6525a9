"""Bemis-Murcko scaffolds."""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold

__all__ = ["murcko_scaffold"]


def murcko_scaffold(mol: Chem.Mol, *, generic: bool = False, isomeric: bool = False) -> str:
    """Canonical SMILES of the Bemis-Murcko scaffold (ring systems + linkers).

    Parameters
    ----------
    mol
        A sanitized molecule.
    generic
        If True, return the generic (CSK) framework: every atom carbon, every bond single.
    isomeric
        Keep stereochemistry in the scaffold SMILES (MOSES and chemprop drop it).

    Returns
    -------
    str
        ``""`` for acyclic molecules (they share the empty scaffold).
    """
    core = MurckoScaffold.GetScaffoldForMol(mol)
    if generic and core.GetNumAtoms():
        core = MurckoScaffold.MakeScaffoldGeneric(core)
        core = MurckoScaffold.GetScaffoldForMol(core)
    return Chem.MolToSmiles(core, isomericSmiles=isomeric)
