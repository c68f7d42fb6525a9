"""MOSES filters: the SMARTS tables from the molsets wheel and each rule of mol_passes_filters."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rdkit import Chem

from molfm.data.sources.moses import filter_alerts
from molfm.eval.filters import (
    MOSES_ALLOWED_ATOMS,
    filter_patterns,
    fraction_passes_filters,
    matching_patterns,
    mol_passes_filters,
)


def mol(smiles: str) -> Chem.Mol:
    m = Chem.MolFromSmiles(smiles)
    assert m is not None, smiles
    return m


def test_pattern_tables_are_complete() -> None:
    patterns = filter_patterns()
    names = [p.name for p in patterns]
    assert len(patterns) == 22 + 480
    assert names[:22] == [f"MCF{i}" for i in range(1, 23)]
    assert "ene_rhod_A(235)" in names and "catechol_A(92)" in names
    assert all(p.smarts == p.smarts.strip() and p.query.GetNumAtoms() > 0 for p in patterns)
    assert MOSES_ALLOWED_ATOMS == {"C", "N", "S", "O", "F", "Cl", "Br", "H"}
    tables = filter_alerts()  # the data layer's reading of the two CSV members
    assert [(p.name, p.smarts) for p in patterns] == tables["mcf"] + tables["pains"]


@pytest.mark.parametrize(
    ("smiles", "alert"),
    [
        ("S=C1SC(=Cc2ccccc2)C(=O)N1", "ene_rhod_A(235)"),  # 5-benzylidene rhodanine
        ("O=C1C=CC(=O)C=C1", "quinone_A(370)"),  # p-benzoquinone
        ("Oc1ccccc1O", "catechol_A(92)"),
        ("CC(C)c1ccc(N=Nc2ccccc2)cc1", "azo_A(324)"),
        ("CN(C)c1ccc(C=Cc2ccccc2)cc1", "anil_di_alk_B(251)"),
        ("CC1OC1", "MCF5"),  # epoxide
        ("CCC=O", "MCF7"),  # aldehyde
        ("CSSC", "MCF16"),  # disulfide
        ("ClCc1ccccc1", "MCF4"),  # primary alkyl halide: needs explicit hydrogens
    ],
)
def test_known_alerts_fail(smiles: str, alert: str) -> None:
    m = mol(smiles)
    assert alert in matching_patterns(m)
    assert not mol_passes_filters(m)


def test_alerts_are_matched_with_explicit_hydrogens() -> None:
    (mcf4,) = [p for p in filter_patterns() if p.name == "MCF4"]
    benzyl_chloride = mol("ClCc1ccccc1")
    assert not benzyl_chloride.HasSubstructMatch(mcf4.query)
    assert Chem.AddHs(benzyl_chloride).HasSubstructMatch(mcf4.query)


@pytest.mark.parametrize(
    "smiles",
    [
        "CC(=O)Oc1ccccc1C(=O)O",  # aspirin
        "CC(C)Cc1ccc(C(C)C(=O)O)cc1",  # ibuprofen
        "CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21",  # diazepam
        "CC(=O)Nc1ccc(O)cc1",  # paracetamol
        "CN1CCC[C@H]1c1cccnc1",  # nicotine
        "C1CCCCCC1",  # a 7-membered ring is still allowed
    ],
)
def test_clean_molecules_pass(smiles: str) -> None:
    m = mol(smiles)
    assert matching_patterns(m) == []
    assert mol_passes_filters(m)


@pytest.mark.parametrize(
    "smiles",
    [
        "C[N+](C)(C)C",  # formal charge
        "Ic1ccccc1",  # iodine is not allowed
        "CP(C)C",  # phosphorus is not allowed
        "C1CCCCCCC1",  # ring of 8 atoms
        "O=C1CCCCCCCCCCN1",  # macrocyclic lactam
    ],
)
def test_structural_rules_fail(smiles: str) -> None:
    m = mol(smiles)
    assert matching_patterns(m) == []  # rejected by the rule, not by an alert
    assert not mol_passes_filters(m)


def test_custom_allowed_atoms_and_invalid() -> None:
    assert mol_passes_filters(mol("Ic1ccccc1"), allowed={"C", "I", "H"})
    assert not mol_passes_filters(mol("CCO"), allowed={"C"})
    assert not mol_passes_filters(None)


def test_fraction_passes_filters() -> None:
    mols = [mol("CCO"), mol("CCC=O"), mol("Ic1ccccc1"), None]
    assert fraction_passes_filters(mols) == pytest.approx(1 / 4)
    with pytest.raises(ValueError):
        fraction_passes_filters([])


def test_moses_test_molecules_pass(read: Callable[[str], list[str]]) -> None:
    # MOSES built its data set with these very filters, so every test molecule passes.
    smiles = read("moses_test_200.csv")[:60]
    assert fraction_passes_filters([mol(s) for s in smiles]) == 1.0
