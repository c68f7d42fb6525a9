from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from molfm.chem.conformers import generate_conformer
from molfm.chem.io import mol_from_xyz, read_sdf, read_xyz, write_sdf, write_xyz
from molfm.chem.parse import InvalidMoleculeError, canonical_smiles, parse_smiles

QM9_XYZ = """5
gdb 1\t157.7118\t157.70997\t157.70699\t0.\t13.21\t-0.3877\t0.1171\t0.5048\t35.3641\t0.044749
C\t-1.26981359e-02\t 1.0858041578\t 0.0080009958\t-0.535689
H\t 2.1504159e-03\t-6.0313176e-03\t 1.97612E-03\t 0.133921
H\t 1.0117308433\t 1.4637511618\t 0.0002765748\t 0.133922
H\t-0.540815069\t 1.4475266138\t-0.8766437152\t 0.133923
H\t-0.5238136345\t 1.4379326443\t 0.9063972942\t 0.133923
1341.307\t1341.3284\t1341.365\t1562.6731\t1562.7453\t3038.3205\t3151.6034\t3151.6788\t3151.7078
C\tC
InChI=1S/CH4/h1H4\tInChI=1S/CH4/h1H4
"""


def with_conformer(smiles: str) -> Chem.Mol:
    mol = parse_smiles(smiles)
    pos = generate_conformer(mol).astype(np.float64)
    conf = Chem.Conformer(mol.GetNumAtoms())
    for i, p in enumerate(pos):
        conf.SetAtomPosition(i, p.tolist())
    conf.Set3D(True)
    mol.AddConformer(conf, assignId=True)
    return mol


def test_qm9_fixture_rows_match(qm9_rows: list) -> None:
    matched = 0
    for row, (smiles, elements, positions) in enumerate(qm9_rows):
        try:
            mol = mol_from_xyz(elements, positions, smiles, row=row)
        except InvalidMoleculeError as err:
            assert "does not match" in err.reason and err.row == row
            continue
        matched += 1
        heavy = [i for i, el in enumerate(elements) if el != "H"]
        assert [a.GetSymbol() for a in mol.GetAtoms()] == [elements[i] for i in heavy]
        np.testing.assert_allclose(mol.GetConformer().GetPositions(), positions[heavy])
        template = parse_smiles(smiles)
        assert canonical_smiles(mol, isomeric=False) == canonical_smiles(template, isomeric=False)
    print(f"QM9 fixture: {matched}/{len(qm9_rows)} rows match their SMILES")
    assert matched >= 95  # all 100 match in practice; QM9 has ~3k mismatches in 134k


def test_xyz_stereo_comes_from_geometry(qm9_rows: list) -> None:
    smiles, elements, positions = next(r for r in qm9_rows if r[0] == "CCC(O)CO")
    mol = mol_from_xyz(elements, positions, smiles)
    assert len(Chem.FindMolChiralCenters(mol)) == 1  # SMILES has no stereo; the geometry does
    mirrored = mol_from_xyz(elements, positions * np.array([1, 1, -1]), smiles)
    assert canonical_smiles(mirrored) != canonical_smiles(mol)
    assert canonical_smiles(mirrored, isomeric=False) == canonical_smiles(mol, isomeric=False)


def test_connectivity_mismatch_is_rejected(qm9_rows: list) -> None:
    smiles, elements, positions = qm9_rows[0]
    assert smiles == "O1C=CC=C1"  # furan, C4H4O
    # Also C4H4O, with one bond fewer: the geometry has a bond the SMILES lacks.
    with pytest.raises(InvalidMoleculeError, match="connectivity does not match") as info:
        mol_from_xyz(elements, positions, "CC(=O)C#C", row=5)
    assert info.value.row == 5
    assert "9 atom pairs are within 1.1x their covalent radii" in info.value.reason
    assert "the SMILES has 8 bonds" in info.value.reason
    with pytest.raises(InvalidMoleculeError, match="elements do not match"):
        mol_from_xyz(elements, positions, "OCCCO")
    stretched = positions.copy()
    stretched[0] += np.array([0.0, 2.5, 0.0])  # pull the ring oxygen away: ring opens
    with pytest.raises(InvalidMoleculeError, match="only 7 atom pairs are within 1.3x"):
        mol_from_xyz(elements, stretched, smiles)
    with pytest.raises(InvalidMoleculeError, match="unclosed ring"):
        mol_from_xyz(elements, positions, "C1CC")
    with pytest.raises(InvalidMoleculeError, match="bad xyz element 'Xx'"):
        mol_from_xyz(["Xx", *elements[1:]], positions, smiles)


def test_tied_contacts_are_ambiguous() -> None:
    # Ozone needs 2 bonds, but an equilateral triangle offers 3 equally good ones.
    side = 1.55  # 1.17x the O-O covalent radii: neither certainly bonded nor too far
    triangle = np.array([[0.0, 0.0, 0.0], [side, 0.0, 0.0], [side / 2, side * 3**0.5 / 2, 0.0]])
    with pytest.raises(InvalidMoleculeError, match="tie at 1.174x .* ambiguous"):
        mol_from_xyz(["O", "O", "O"], triangle, "[O-][O+]=O")
    bent = np.array([[-1.09, 0.0, 0.0], [0.0, 0.67, 0.0], [1.09, 0.0, 0.0]])  # real ozone
    mol = mol_from_xyz(["O", "O", "O"], bent, "[O-][O+]=O")
    assert [a.GetFormalCharge() for a in mol.GetAtoms()][1] == 1  # the central atom
    assert mol.GetBondBetweenAtoms(0, 2) is None


QM9_STRAINED = [
    "C1C2CC1C2",  # bicyclo[1.1.1]pentane
    "C1C2CC1O2",
    "OC12CC(C1)C2",
    "OC12CN(C1)C2",
    "C1C2C3C1C1N=C3OC21",
    "O=CC12OC3C1C(=O)C23",
    "CC12C3N1C1CC2C=C31",  # the narrowest gap in QM9: bonds up to 1.07x, non-bonded from 1.15x
]


@pytest.mark.parametrize("smiles", QM9_STRAINED)
def test_strained_qm9_cages_match(qm9_hard_rows: dict, smiles: str) -> None:
    _, elements, positions = qm9_hard_rows[smiles]
    mol = mol_from_xyz(elements, positions, smiles)
    heavy = [i for i, el in enumerate(elements) if el != "H"]
    assert [a.GetSymbol() for a in mol.GetAtoms()] == [elements[i] for i in heavy]
    np.testing.assert_allclose(mol.GetConformer().GetPositions(), positions[heavy])
    template = parse_smiles(smiles)
    assert canonical_smiles(mol, isomeric=False) == canonical_smiles(template, isomeric=False)
    assert mol.GetNumBonds() == template.GetNumBonds()


def test_bicyclopentane_bridgeheads_are_not_bonded(qm9_hard_rows: dict) -> None:
    # Why one fixed covalent-radius factor fails: the non-bonded bridgeheads (1.87 A) are
    # closer than 1.3x (RDKit's default covFactor) the C-C radii sum of 1.52 A.
    _, elements, positions = qm9_hard_rows["C1C2CC1C2"]
    mol = mol_from_xyz(elements, positions, "C1C2CC1C2")
    bridgeheads = [a.GetIdx() for a in mol.GetAtoms() if a.GetDegree() == 3]
    assert len(bridgeheads) == 2
    assert mol.GetBondBetweenAtoms(*bridgeheads) is None
    distance = np.linalg.norm(np.subtract(*positions[bridgeheads]))
    assert 1.8 < distance < 1.3 * 2 * 0.76


@pytest.mark.parametrize("smiles", ["CC1C2C3C4=CCC13C24", "CN1C2C3C4=CCC13C24"])
def test_rearranged_qm9_geometry_rejected(qm9_hard_rows: dict, smiles: str) -> None:
    # QM9 gdb 133857 / 133859: in the relaxed geometry the quaternary carbon is bonded to a
    # different CH than in the SMILES (2.1 A away), a different skeleton with the same formula.
    _, elements, positions = qm9_hard_rows[smiles]
    with pytest.raises(InvalidMoleculeError, match="closest atom pairs form a different graph"):
        mol_from_xyz(elements, positions, smiles, row=7)


def test_read_qm9_style_xyz(tmp_path: Path) -> None:
    path = tmp_path / "dsgdb9nsd_000001.xyz"
    path.write_text(QM9_XYZ)
    elements, positions = read_xyz(path)
    assert elements == ["C", "H", "H", "H", "H"]
    assert positions.shape == (5, 3) and positions.dtype == np.float64
    assert positions[1, 0] == pytest.approx(2.1504159e-03)
    mol = mol_from_xyz(elements, positions, "C")
    assert mol.GetNumAtoms() == 1


def test_xyz_round_trip(tmp_path: Path, qm9_rows: list) -> None:
    _, elements, positions = qm9_rows[3]
    path = tmp_path / "mol.xyz"
    write_xyz(path, elements, positions, comment="row 3")
    back_elements, back_positions = read_xyz(path)
    assert back_elements == elements
    np.testing.assert_allclose(back_positions, positions, atol=1e-8)
    assert path.read_text().splitlines()[1] == "row 3"
    with pytest.raises(ValueError):
        write_xyz(path, elements, positions[:-1])
    (tmp_path / "bad.xyz").write_text("3\n\nC 0 0 0\n")
    with pytest.raises(ValueError, match="expected 3 atom lines"):
        read_xyz(tmp_path / "bad.xyz")


@pytest.mark.parametrize("suffix", [".sdf", ".sdf.gz"])
def test_sdf_round_trip_with_props(tmp_path: Path, suffix: str) -> None:
    mols = [with_conformer(s) for s in ("CCO", "c1ccccc1O", "CC(=O)[O-].[Na+]")]
    props = [{"name": "ethanol", "y": 1.5, "n": 3, "flag": True}, {"y": 2.0}, {"y": -1.0}]
    path = tmp_path / f"out{suffix}"
    assert write_sdf(path, mols, props) == 3
    assert not mols[0].HasProp("y")  # the caller's molecules are untouched
    records = list(read_sdf(path))
    assert [r[0] for r in records] == [0, 1, 2]
    assert all(mol is not None and reason is None for _, mol, reason in records)
    first = records[0][1]
    assert first.GetProp("name") == "ethanol" and first.GetDoubleProp("y") == 1.5
    assert first.GetIntProp("n") == 3
    for original, (_, back, _) in zip(mols, records, strict=True):
        assert canonical_smiles(back) == canonical_smiles(original)
        np.testing.assert_allclose(
            back.GetConformer().GetPositions(), original.GetConformer().GetPositions(), atol=1e-3
        )


def test_sdf_bad_record_reported_and_reading_continues(tmp_path: Path) -> None:
    good = Chem.MolToMolBlock(with_conformer("CCO"))
    bad_mol = Chem.MolFromSmiles("N(C)(C)(C)(C)C", sanitize=False)
    bad = Chem.MolToMolBlock(bad_mol, kekulize=False)
    path = tmp_path / "mixed.sdf"
    path.write_text("$$$$\n".join([good, bad, good]) + "$$$$\n")
    records = list(read_sdf(path))
    assert [(i, mol is None) for i, mol, _ in records] == [(0, False), (1, True), (2, False)]
    assert "valence" in records[1][2]


def test_sdf_keep_hydrogens(tmp_path: Path) -> None:
    mol = Chem.AddHs(parse_smiles("CO"))
    mol.AddConformer(Chem.Conformer(mol.GetNumAtoms()), assignId=True)
    path = tmp_path / "h.sdf"
    write_sdf(path, [mol])
    ((_, with_h, _),) = read_sdf(path, remove_hs=False)
    ((_, without_h, _),) = read_sdf(path)
    assert with_h.GetNumAtoms() == 6 and without_h.GetNumAtoms() == 2
