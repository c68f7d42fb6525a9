"""3D-PGT geometry targets against explicit enumeration with RDKit's rdMolTransforms.

The implementation never enumerates angle triplets or dihedral quadruplets (its cost is linear
in the number of bonds, whatever the atom degrees); these tests enumerate them by brute force.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdDepictor, rdMolTransforms

from molfm.chem.conformers import generate_conformer
from molfm.chem.featurize import featurize
from molfm.chem.geometry import (
    GeometryTargets,
    bond_index,
    geometry_targets,
    geometry_targets_from_positions,
)
from molfm.chem.io import mol_from_xyz
from molfm.chem.parse import parse_smiles

DATA = Path(__file__).parents[1] / "data"
# Rings incl. 3-rings (epoxide, cyclopropane, aziridine), triple bonds (alkyne, nitrile), a
# spiro and a fused bicycle, charged atoms.
HAND_SMILES = [
    "CC1OC1C(=O)N",
    "C1CC1C#CC",
    "N#Cc1ccc(C2CC2)cc1",
    "CC#CCN1CC1",
    "C1CC12CCOCC2",
    "O=C1CC2(CC2)C1",
    "C[N+](C)(C)CC(=O)[O-]",
]


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def with_conformer(mol: Chem.Mol, pos: np.ndarray) -> Chem.Mol:
    mol = Chem.Mol(mol)
    conf = Chem.Conformer(mol.GetNumAtoms())
    for idx, p in enumerate(np.asarray(pos, dtype=np.float64)):
        conf.SetAtomPosition(idx, p.tolist())
    mol.AddConformer(conf, assignId=True)
    return mol


def brute_force(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    conf = mol.GetConformer()
    lengths = [rdMolTransforms.GetBondLength(conf, *map(int, b)) for b in bond_index(mol)]
    cos_sum = np.zeros(mol.GetNumAtoms())
    for atom in mol.GetAtoms():
        nbrs = [n.GetIdx() for n in atom.GetNeighbors()]
        for a, c in itertools.combinations(nbrs, 2):
            cos_sum[atom.GetIdx()] += np.cos(rdMolTransforms.GetAngleRad(conf, a, atom.GetIdx(), c))
    dihedral = np.zeros(mol.GetNumBonds())
    for bond in mol.GetBonds():
        j, k = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        for i in (n.GetIdx() for n in bond.GetBeginAtom().GetNeighbors()):
            for l_ in (n.GetIdx() for n in bond.GetEndAtom().GetNeighbors()):
                if i == k or l_ == j:
                    continue  # i == l (3-ring) is kept
                sines = np.sin(rdMolTransforms.GetAngleRad(conf, i, j, k)) * np.sin(
                    rdMolTransforms.GetAngleRad(conf, j, k, l_)
                )
                if abs(sines) < 1e-9:
                    continue  # linear angle: the term is 0 whatever the dihedral
                phi = rdMolTransforms.GetDihedralRad(conf, i, j, k, l_)
                dihedral[bond.GetIdx()] += sines * np.cos(phi)
    return np.array(lengths), cos_sum, dihedral


def assert_matches_brute_force(mol: Chem.Mol) -> GeometryTargets:
    targets = geometry_targets(mol)
    lengths, cos_sum, dihedral = brute_force(mol)
    np.testing.assert_allclose(targets.bond_length, lengths, atol=1e-4)
    np.testing.assert_allclose(targets.angle_cos_sum, cos_sum, atol=1e-4)
    np.testing.assert_allclose(targets.dihedral_sum, dihedral, atol=1e-4)
    return targets


def assert_aligned_with_featurize(mol: Chem.Mol, targets: GeometryTargets) -> None:
    graph = featurize(mol)
    assert targets.angle_cos_sum.shape == (graph.num_nodes,)
    assert targets.bond_length.shape == targets.dihedral_sum.shape == (graph.num_edges // 2,)
    pos = mol.GetConformer().GetPositions()
    from_graph = geometry_targets_from_positions(pos, graph.edge_index[:, 0::2].T, graph.num_nodes)
    for name in ("bond_length", "angle_cos_sum", "dihedral_sum"):
        np.testing.assert_array_equal(getattr(from_graph, name), getattr(targets, name))


@pytest.fixture(scope="module")
def drug_mols() -> list[Chem.Mol]:
    with open(DATA / "moses_test_200.csv", newline="") as handle:
        smiles = [row["SMILES"] for row in csv.DictReader(handle)][:8]
    mols = []
    for text in smiles + HAND_SMILES:
        mol = parse_smiles(text)
        mols.append(with_conformer(mol, generate_conformer(mol)))
    return mols


def test_qm9_dft_geometries_match_brute_force(qm9_rows: list) -> None:
    three_rings = 0
    for smiles, elements, positions in qm9_rows[:20]:
        mol = mol_from_xyz(elements, positions, smiles)
        three_rings += any(len(r) == 3 for r in mol.GetRingInfo().AtomRings())
        targets = assert_matches_brute_force(mol)
        assert_aligned_with_featurize(mol, targets)
        assert all(arr.dtype == np.float32 for arr in vars(targets).values())
    assert three_rings  # the fixture slice exercises i == l terms


def test_rdkit_conformers_match_brute_force(drug_mols: list[Chem.Mol]) -> None:
    for mol in drug_mols:
        assert_aligned_with_featurize(mol, assert_matches_brute_force(mol))


def test_triple_bond_terms_vanish(drug_mols: list[Chem.Mol]) -> None:
    mol = next(m for m in drug_mols if Chem.MolToSmiles(m) == Chem.CanonSmiles("C1CC1C#CC"))
    targets = geometry_targets(mol)
    triple = [b.GetIdx() for b in mol.GetBonds() if b.GetBondType() == Chem.BondType.TRIPLE]
    assert abs(targets.dihedral_sum[triple[0]]) < 1e-3  # both angles at the C#C are ~180
    sp = [a.GetIdx() for a in mol.GetAtoms() if a.GetHybridization() == Chem.HybridizationType.SP]
    np.testing.assert_allclose(targets.angle_cos_sum[sp], -1.0, atol=1e-3)


def test_explicit_hydrogens_are_nodes_like_featurize() -> None:
    mol = Chem.AddHs(parse_smiles("CC1OC1C#N"))
    mol = with_conformer(mol, generate_conformer(mol))
    targets = assert_matches_brute_force(mol)
    assert len(targets.angle_cos_sum) == mol.GetNumAtoms() == 11
    assert_aligned_with_featurize(mol, targets)


def test_rigid_motion_invariance(drug_mols: list[Chem.Mol]) -> None:
    rng = np.random.default_rng(0)
    for mol in drug_mols[:4] + drug_mols[-3:]:
        pos, bonds = mol.GetConformer().GetPositions(), bond_index(mol)
        ref = geometry_targets_from_positions(pos, bonds)
        moved = pos @ random_rotation(rng).T + rng.normal(size=3) * 20
        out = geometry_targets_from_positions(moved, bonds)
        for name in ("bond_length", "angle_cos_sum", "dihedral_sum"):
            np.testing.assert_allclose(getattr(out, name), getattr(ref, name), atol=1e-5)


def test_atom_permutation_equivariance(drug_mols: list[Chem.Mol]) -> None:
    rng = np.random.default_rng(1)
    for mol in drug_mols[:3] + drug_mols[-4:]:
        perm = rng.permutation(mol.GetNumAtoms())
        renum = Chem.RenumberAtoms(mol, perm.tolist())  # new atom a is old atom perm[a]
        ref, out = geometry_targets(mol), geometry_targets(renum)
        np.testing.assert_allclose(out.angle_cos_sum, ref.angle_cos_sum[perm], atol=1e-5)
        old = {tuple(sorted(b)): idx for idx, b in enumerate(bond_index(mol).tolist())}
        to_old = [old[tuple(sorted(perm[b]))] for b in bond_index(renum)]
        np.testing.assert_allclose(out.bond_length, ref.bond_length[to_old], atol=1e-5)
        np.testing.assert_allclose(out.dihedral_sum, ref.dihedral_sum[to_old], atol=1e-5)


def test_bond_direction_does_not_matter() -> None:
    rng = np.random.default_rng(2)
    pos = rng.normal(size=(6, 3)) * 1.5
    bonds = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [1, 5], [5, 2]])
    ref = geometry_targets_from_positions(pos, bonds)
    flipped = geometry_targets_from_positions(pos, bonds[:, ::-1])
    np.testing.assert_allclose(flipped.dihedral_sum, ref.dihedral_sum, atol=1e-6)
    np.testing.assert_allclose(flipped.angle_cos_sum, ref.angle_cos_sum, atol=1e-6)


def test_single_atom_and_diatomic() -> None:
    single = geometry_targets(with_conformer(parse_smiles("C"), np.zeros((1, 3))))
    assert single.bond_length.shape == single.dihedral_sum.shape == (0,)
    assert single.angle_cos_sum.tolist() == [0.0]
    assert all(arr.dtype == np.float32 for arr in vars(single).values())
    diatomic = geometry_targets(with_conformer(parse_smiles("N#N"), [[0, 0, 0], [0, 0, 1.1]]))
    assert diatomic.bond_length.tolist() == pytest.approx([1.1])
    assert diatomic.angle_cos_sum.tolist() == [0.0, 0.0]
    assert diatomic.dihedral_sum.tolist() == [0.0]
    empty = geometry_targets_from_positions(np.zeros((0, 3)), np.zeros((0, 2), dtype=int))
    assert empty.angle_cos_sum.shape == empty.bond_length.shape == (0,)


def test_hand_made_values() -> None:
    # Methane-like star: 4 neighbours at tetrahedral angles, 6 angles with cos = -1/3.
    tet = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float)
    star = geometry_targets_from_positions(
        np.vstack([np.zeros(3), tet]), [[0, a] for a in range(1, 5)]
    )
    assert star.angle_cos_sum[0] == pytest.approx(-2.0, abs=1e-6)
    # Planar cis and trans butane skeletons with 90 degree bond angles: sum = +1 and -1.
    cis = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1], [1, 0, 1]])
    trans = cis * np.array([[-1.0, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]])
    chain = [[0, 1], [1, 2], [2, 3]]
    assert geometry_targets_from_positions(cis, chain).dihedral_sum[1] == pytest.approx(1.0)
    assert geometry_targets_from_positions(trans, chain).dihedral_sum[1] == pytest.approx(-1.0)


def test_errors() -> None:
    with pytest.raises(ValueError, match="conformer"):
        geometry_targets(parse_smiles("CCO"))
    flat = Chem.Mol(parse_smiles("CCO"))
    rdDepictor.Compute2DCoords(flat)
    with pytest.raises(ValueError, match="3D"):
        geometry_targets(flat)
    with pytest.raises(ValueError, match=r"edge_index\.T"):
        geometry_targets_from_positions(np.zeros((3, 3)), np.array([[0, 1, 2], [1, 2, 0]]))
    with pytest.raises(ValueError, match="distinct"):
        geometry_targets_from_positions(np.zeros((2, 3)), [[0, 1]])
    with pytest.raises(ValueError, match="num_atoms"):
        geometry_targets_from_positions(np.ones((2, 3)), [[0, 1]], num_atoms=3)
    with pytest.raises(ValueError, match="range|lie in"):
        geometry_targets_from_positions(np.ones((2, 3)), [[0, 2]])
