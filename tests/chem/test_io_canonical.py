"""Molecules read with coordinates: flat (2D) records told from 3D ones, and the canonical atom
order that makes their graphs independent of the order a file lists atoms in."""

from __future__ import annotations

import numpy as np
import pytest
from ogb.utils.mol import smiles2graph
from rdkit import Chem
from rdkit.Chem import AllChem

from molfm.chem.conformers import ConformerOptions, generate_conformer
from molfm.chem.featurize import featurize
from molfm.chem.geometry import geometry_targets
from molfm.chem.io import canonical_atom_order, mol_from_xyz, positions_3d, sdf_molecule


def _with_conformer(mol: Chem.Mol, pos: np.ndarray, is_3d: bool = True) -> Chem.Mol:
    mol = Chem.Mol(mol)
    conf = Chem.Conformer(mol.GetNumAtoms())
    conf.SetPositions(np.asarray(pos, dtype=np.float64))
    conf.Set3D(is_3d)
    mol.AddConformer(conf, assignId=True)
    return mol


def _match(new_pos: np.ndarray, old_pos: np.ndarray) -> np.ndarray:
    """``match[j]``: the old atom at new atom ``j``'s place (one to one)."""
    match = np.linalg.norm(new_pos[:, None] - old_pos[None], axis=-1).argmin(axis=1)
    assert sorted(match) == list(range(len(old_pos)))
    np.testing.assert_allclose(new_pos, old_pos[match], atol=1e-5)
    return match


def test_positions_3d_tells_flat_records_from_3d_ones() -> None:
    mol = Chem.MolFromSmiles("OCC(=O)N")
    assert positions_3d(mol) is None  # no conformer
    drawn = Chem.Mol(mol)
    AllChem.Compute2DCoords(drawn)
    assert not drawn.GetConformer().Is3D() and positions_3d(drawn) is None
    # marked 3D, but flat: a drawing (z = 0) or no coordinates at all
    assert positions_3d(_with_conformer(mol, drawn.GetConformer().GetPositions())) is None
    assert positions_3d(_with_conformer(mol, np.zeros((mol.GetNumAtoms(), 3)))) is None
    pos = generate_conformer(mol, ConformerOptions(seed=0))
    out = positions_3d(_with_conformer(mol, pos))
    assert out is not None and out.dtype == np.float32
    np.testing.assert_allclose(out, pos, atol=1e-6)
    assert positions_3d(_with_conformer(mol, pos, is_3d=False)) is None  # the file says 2D


def test_canonical_smiles_keep_their_graph(moses_smiles: list[str], b3db_smiles: list[str]):
    """A molecule parsed from its canonical SMILES (what SMILES sources and shipped models
    featurize) has the same graph after canonical_atom_order as before, OGB's included."""
    stereo = 0
    for smiles in moses_smiles[:200] + b3db_smiles:
        canonical = Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
        mol = Chem.MolFromSmiles(canonical)
        before, after = featurize(mol), featurize(canonical_atom_order(mol)[0])
        ref = smiles2graph(canonical)
        for key, ogb_key in (
            ("x", "node_feat"),
            ("edge_index", "edge_index"),
            ("edge_attr", "edge_feat"),
        ):
            np.testing.assert_array_equal(getattr(after, key), getattr(before, key), canonical)
            np.testing.assert_array_equal(getattr(after, key), ref[ogb_key], canonical)
        stereo += "@" in canonical
    assert stereo > 10


def test_written_order_does_not_change_the_graph(b3db_smiles: list[str]) -> None:
    """The same chiral molecule written from randomly renumbered atoms: in written order some
    CW/CCW tags differ, in canonical order the graphs are identical."""
    rng = np.random.default_rng(0)
    flipped = 0
    chiral = [m for m in map(Chem.MolFromSmiles, b3db_smiles) if Chem.FindMolChiralCenters(m)]
    for mol in chiral[:30]:
        order = rng.permutation(mol.GetNumAtoms()).tolist()
        written = Chem.MolToSmiles(Chem.RenumberAtoms(mol, order), canonical=False)
        other = Chem.MolFromSmiles(written)
        flipped += featurize(other).x[:, 1].tolist() != featurize(mol).x[:, 1].tolist()
        a, b = featurize(canonical_atom_order(mol)[0]), featurize(canonical_atom_order(other)[0])
        for key in ("x", "edge_index", "edge_attr"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert flipped >= 5, flipped  # written order alone does move the tags


def test_positions_and_geometry_targets_follow_the_atoms(qm9_rows: list) -> None:
    """QM9 DFT geometries (xyz order) renumbered: each atom keeps its element and coordinates,
    and the bond-length / angle targets computed from the new conformer are the old ones."""
    moved = 0
    for row, (smiles, elements, positions) in enumerate(qm9_rows[:40]):
        mol = mol_from_xyz(elements, positions, smiles, row=row)
        pos = mol.GetConformer().GetPositions().astype(np.float32)
        new, new_pos = canonical_atom_order(mol, pos)
        match = _match(new_pos, pos)
        moved += not np.array_equal(match, np.arange(len(match)))
        np.testing.assert_allclose(new.GetConformer().GetPositions(), new_pos, atol=1e-6)
        assert [a.GetAtomicNum() for a in new.GetAtoms()] == [
            mol.GetAtomWithIdx(int(i)).GetAtomicNum() for i in match
        ]
        old_t, new_t = geometry_targets(mol), geometry_targets(new)
        np.testing.assert_allclose(new_t.angle_cos_sum, old_t.angle_cos_sum[match], atol=1e-4)
        old_bonds = {
            frozenset((b.GetBeginAtomIdx(), b.GetEndAtomIdx())): k
            for k, b in enumerate(mol.GetBonds())
        }
        for k, bond in enumerate(new.GetBonds()):
            pair = frozenset(int(match[i]) for i in (bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
            assert new_t.bond_length[k] == pytest.approx(old_t.bond_length[old_bonds[pair]], 1e-4)
    assert moved >= 10  # canonical order is not the xyz order


def test_hydrogens_held_as_atoms_stay_atoms() -> None:
    mol = Chem.AddHs(Chem.MolFromSmiles("C[C@H](N)O"))
    pos = generate_conformer(mol, ConformerOptions(seed=0))
    new, new_pos = sdf_molecule(_with_conformer(mol, pos))
    assert new.GetNumAtoms() == mol.GetNumAtoms() and new_pos is not None
    _match(new_pos, pos)
    assert sdf_molecule(mol)[1] is None  # no coordinates: the molecule alone
