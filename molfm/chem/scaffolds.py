"""Bemis-Murcko scaffolds: the one scaffold function (data splits, MOSES Scaf metric)."""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold

__all__ = ["murcko_scaffold"]


def murcko_scaffold(
    mol: Chem.Mol, *, generic: bool = False, isomeric: bool = False, min_rings: int = 0
) -> str:
    """Canonical SMILES of the Bemis-Murcko scaffold (ring systems + linkers).

    Parameters
    ----------
    mol
        A sanitized molecule.
    generic
        If True, return the generic (CSK) framework: every atom carbon, every bond single.
    isomeric
        Keep stereochemistry in the scaffold SMILES (MOSES keeps it; chemprop and the scaffold
        split drop it).
    min_rings
        Scaffolds with fewer rings than this give ``""`` (MOSES's Scaf metric uses 2).

    Returns
    -------
    str
        ``""`` for acyclic molecules (they share the empty scaffold) and for scaffolds with
        fewer than ``min_rings`` rings.

    Examples
    --------
    >>> murcko_scaffold(Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O"))
    'c1ccccc1'
    >>> murcko_scaffold(Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O"), min_rings=2)
    ''
    """
    core = MurckoScaffold.GetScaffoldForMol(mol)
    if generic and core.GetNumAtoms():
        core = MurckoScaffold.MakeScaffoldGeneric(core)
        core = MurckoScaffold.GetScaffoldForMol(core)
    if min_rings and core.GetRingInfo().NumRings() < min_rings:
        return ""
    return Chem.MolToSmiles(core, isomericSmiles=isomeric)
