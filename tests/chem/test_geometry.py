from __future__ import annotations

import itertools

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdMolTransforms

from molfm.chem.conformers import generate_conformer
from molfm.chem.geometry import (
    angle_triplets,
    bond_angles,
    bond_index,
    bond_lengths,
    dihedral_angles,
    dihedral_quadruplets,
    shortest_path_matrix,
)
from molfm.chem.io import mol_from_xyz
from molfm.chem.parse import parse_smiles


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def brute_triplets(mol: Chem.Mol) -> set[tuple[int, int, int]]:
    out = set()
    for atom in mol.GetAtoms():
        nbrs = sorted(n.GetIdx() for n in atom.GetNeighbors())
        out.update((i, atom.GetIdx(), k) for i, k in itertools.combinations(nbrs, 2))
    return out


def brute_quads(mol: Chem.Mol) -> set[tuple[int, int, int, int]]:
    out = set()
    for bond in mol.GetBonds():
        j, k = bond.GetBeginAtom(), bond.GetEndAtom()
        for i in j.GetNeighbors():
            for l_ in k.GetNeighbors():
                ii, ll = i.GetIdx(), l_.GetIdx()
                if ii != k.GetIdx() and ll != j.GetIdx() and ii != ll:
                    out.add((ii, j.GetIdx(), k.GetIdx(), ll))
    return out


def test_ethane_bond_length_from_mmff() -> None:
    mol = parse_smiles("CC")
    pos = generate_conformer(mol)
    (length,) = bond_lengths(pos, bond_index(mol))
    assert length == pytest.approx(1.53, abs=0.02)


def test_benzene_angles_are_120_degrees() -> None:
    mol = parse_smiles("c1ccccc1")
    triplets = angle_triplets(mol)
    assert len(triplets) == 6
    angles = np.degrees(bond_angles(generate_conformer(mol), triplets))
    np.testing.assert_allclose(angles, 120.0, atol=1.0)


@pytest.mark.parametrize("phi", [0.0, 30.0, 60.0, 90.0, 150.0, 180.0, -45.0, -120.0, -179.0])
def test_dihedral_sign_on_hand_made_geometry(phi: float) -> None:
    # i on +x, j at the origin, k on +z, l rotated by phi about z: torsion i-j-k-l == phi.
    rad = np.radians(phi)
    pos = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1.0], [np.cos(rad), np.sin(rad), 1.0]])
    (value,) = dihedral_angles(pos, np.array([[0, 1, 2, 3]]))
    expected = np.radians(180.0) if phi in (180.0, -180.0) else rad
    assert value == pytest.approx(expected, abs=1e-9)
    conf_mol = Chem.RWMol()
    for _ in range(4):
        conf_mol.AddAtom(Chem.Atom(6))
    conf = Chem.Conformer(4)
    for idx, p in enumerate(pos):
        conf.SetAtomPosition(idx, p.tolist())
    conf_mol.AddConformer(conf)
    rdkit_value = rdMolTransforms.GetDihedralRad(conf_mol.GetConformer(), 0, 1, 2, 3)
    assert abs(np.angle(np.exp(1j * (value - rdkit_value)))) < 1e-9


def test_dihedral_range_is_half_open() -> None:
    pos = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1.0], [-1.0, -0.0, 1.0]])
    (value,) = dihedral_angles(pos, np.array([[0, 1, 2, 3]]))
    assert value == pytest.approx(np.pi)  # never -pi


def test_angles_and_dihedrals_match_rdkit_on_conformer() -> None:
    mol = Chem.AddHs(parse_smiles("CC(=O)N[C@@H](C)C(=O)OCC"))
    pos = generate_conformer(mol)  # explicit Hs are atoms of mol, so every position comes back
    conf = Chem.Conformer(mol.GetNumAtoms())
    for idx, p in enumerate(pos.astype(np.float64)):
        conf.SetAtomPosition(idx, p.tolist())
    mol.AddConformer(conf, assignId=True)
    conf = mol.GetConformer()
    triplets, quads = angle_triplets(mol), dihedral_quadruplets(mol)
    ours_a = bond_angles(pos, triplets)
    ref_a = [rdMolTransforms.GetAngleRad(conf, *map(int, t)) for t in triplets]
    np.testing.assert_allclose(ours_a, ref_a, atol=1e-5)
    ours_d = dihedral_angles(pos, quads)
    ref_d = np.array([rdMolTransforms.GetDihedralRad(conf, *map(int, q)) for q in quads])
    np.testing.assert_allclose(np.angle(np.exp(1j * (ours_d - ref_d))), 0.0, atol=1e-4)
    assert ours_d.min() > -np.pi and ours_d.max() <= np.pi


def test_index_sets_match_brute_force(moses_smiles: list[str]) -> None:
    for smiles in moses_smiles[:100] + ["C1CC1", "C", "CC", "C1CC2CC1C2", "[Na+].[Cl-]"]:
        mol = parse_smiles(smiles)
        triplets = angle_triplets(mol)
        quads = dihedral_quadruplets(mol)
        assert set(map(tuple, triplets.tolist())) == brute_triplets(mol)
        assert len(set(map(tuple, triplets.tolist()))) == len(triplets)  # each angle once
        assert set(map(tuple, quads.tolist())) == brute_quads(mol)
        assert len(set(map(tuple, quads.tolist()))) == len(quads)
        np.testing.assert_array_equal(angle_triplets(bond_index(mol)), triplets)


def test_small_index_sets() -> None:
    assert angle_triplets(parse_smiles("CCC")).tolist() == [[0, 1, 2]]
    assert dihedral_quadruplets(parse_smiles("CCCC")).tolist() == [[0, 1, 2, 3]]
    assert len(dihedral_quadruplets(parse_smiles("C1CC1"))) == 0  # i == l in a 3-ring
    assert angle_triplets(parse_smiles("C")).shape == (0, 3)
    assert dihedral_quadruplets(parse_smiles("CC")).shape == (0, 4)


def test_index_arrays_are_checked() -> None:
    pos = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"edge_index\.T"):
        bond_lengths(pos, np.array([[0, 1, 2], [1, 2, 3]]))  # a [2, E] edge index
    with pytest.raises(ValueError, match="triplets"):
        bond_angles(pos, np.array([0, 1, 2]))
    assert bond_lengths(pos, np.zeros((0, 2), dtype=int)).shape == (0,)
    assert dihedral_angles(pos, []).shape == (0,)


def test_rotation_translation_invariance_and_reflection() -> None:
    rng = np.random.default_rng(0)
    mol = parse_smiles("CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O")
    pos = generate_conformer(mol).astype(np.float64)
    bonds, triplets, quads = bond_index(mol), angle_triplets(mol), dihedral_quadruplets(mol)
    moved = pos @ random_rotation(rng).T + rng.normal(size=3) * 10
    np.testing.assert_allclose(bond_lengths(moved, bonds), bond_lengths(pos, bonds), atol=1e-9)
    np.testing.assert_allclose(bond_angles(moved, triplets), bond_angles(pos, triplets), atol=1e-9)
    d0, d1 = dihedral_angles(pos, quads), dihedral_angles(moved, quads)
    np.testing.assert_allclose(np.angle(np.exp(1j * (d1 - d0))), 0.0, atol=1e-9)
    mirrored = pos * np.array([1.0, 1.0, -1.0])
    np.testing.assert_allclose(
        np.angle(np.exp(1j * (dihedral_angles(mirrored, quads) + d0))), 0.0, atol=1e-9
    )


def test_qm9_geometry_is_plausible(qm9_rows: list) -> None:
    lengths, angles = [], []
    for smiles, elements, positions in qm9_rows[:40]:
        mol = mol_from_xyz(elements, positions, smiles)
        pos = mol.GetConformer().GetPositions()
        lengths.append(bond_lengths(pos, bond_index(mol)))
        angles.append(np.degrees(bond_angles(pos, angle_triplets(mol))))
    lengths_all, angles_all = np.concatenate(lengths), np.concatenate(angles)
    assert lengths_all.min() > 1.1 and lengths_all.max() < 1.65  # heavy-atom bonds (DFT)
    assert angles_all.min() > 55 and angles_all.max() <= 180.0 + 1e-6  # 3-rings down to ~60
    assert np.median(lengths_all) == pytest.approx(1.45, abs=0.08)


def test_shortest_paths(moses_smiles: list[str]) -> None:
    for smiles in moses_smiles[:50]:
        mol = parse_smiles(smiles)
        ref = Chem.GetDistanceMatrix(mol).astype(np.int64)
        np.testing.assert_array_equal(shortest_path_matrix(mol), ref)
        edges = bond_index(mol).T
        np.testing.assert_array_equal(shortest_path_matrix(edges, mol.GetNumAtoms()), ref)
        clipped = shortest_path_matrix(mol, max_distance=3)
        np.testing.assert_array_equal(clipped, np.minimum(ref, 3))


def test_shortest_path_sentinels_for_fragments() -> None:
    mol = parse_smiles("CCO.[Na+]")
    dist = shortest_path_matrix(mol)
    assert dist[0, 2] == 2 and dist[0, 3] == -1 and dist[3, 3] == 0
    clipped = shortest_path_matrix(mol, max_distance=1)
    assert clipped[0, 2] == 1 and clipped[0, 3] == 2
    edges = np.array([[0, 1], [1, 2]])  # [2, E]; node 3 is isolated
    from_edges = shortest_path_matrix(edges, num_nodes=4)
    assert from_edges.tolist() == [[0, 1, 2, -1], [1, 0, 1, -1], [2, 1, 0, -1], [-1, -1, -1, 0]]
