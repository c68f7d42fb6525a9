"""The binary-format reader gives exactly what RDKit's getters give, or declines."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molfm.chem import rdkit_pickle
from molfm.chem.featurize import _raw_arrays_from_getters, featurize
from molfm.chem.rdkit_pickle import SUPPORTED_VERSIONS, pickle_version, read_raw_arrays

# test_featurize's molecules for the misc buckets, where the getters take odd paths
EXOTIC = [
    "[Fe+6]",
    "[Na+]",
    "[NH3]->[Fe]",  # dative bond
    "F[S](F)(F)(F)(F)F",
    "[U](F)(F)(F)(F)(F)(F)(F)(F)(F)(F)(F)F",
    "C=[N+]=[N-]",
    "CC(=O)[O-].[Na+]",
    "c1ccc2[nH]ccc2c1",
    "[H]C([H])([H])[H]",
    "C#N",
]


def assert_reader_matches_getters(mol: Chem.Mol) -> bool:
    """True if the reader read the molecule (and then equal to the getters), False if it
    declined."""
    raw = read_raw_arrays(mol)
    if raw is None:
        return False
    reference = _raw_arrays_from_getters(mol)
    for got, want, name in zip(raw, reference, ("atoms", "bonds", "ends")):
        np.testing.assert_array_equal(got, want, err_msg=f"{name} of {Chem.MolToSmiles(mol)}")
    return True


def test_installed_rdkit_format_is_read() -> None:
    # an RDKit whose format is not known falls back to the getters: correct, 2-3x slower
    assert pickle_version(Chem.MolFromSmiles("C")) in SUPPORTED_VERSIONS


@pytest.mark.parametrize("fixture", ["moses_smiles", "b3db_smiles", "pubchem_smiles"])
def test_same_as_getters_on_fixtures(fixture: str, request: pytest.FixtureRequest) -> None:
    mols = [Chem.MolFromSmiles(s) for s in request.getfixturevalue(fixture)]
    mols = [m for m in mols if m is not None]
    read = sum(assert_reader_matches_getters(m) for m in mols)
    assert read >= 0.95 * len(mols)  # declined ones are isotopes and the like


@pytest.mark.parametrize("smiles", EXOTIC)
def test_same_as_getters_or_declined_on_exotic(smiles: str) -> None:
    assert_reader_matches_getters(Chem.MolFromSmiles(smiles))


@pytest.mark.parametrize(
    "smiles",
    [
        "F/C=C/F",  # bond directions and stereo atoms in the bond records
        "C/C=C/C=C\\C",
        "C[C@H](N)C(=O)O",
        "[O-][N+](=O)c1ccccc1",
        "[CH2]C",
        "O=S(=O)(O)O",
        "[Na+].[Cl-]",
        "C1CC2CCC1C2",
        "[H][H]",
        "C[C@@H]1CC[C@H](C)CC1",
    ],
)
def test_read_not_declined(smiles: str) -> None:
    assert assert_reader_matches_getters(Chem.MolFromSmiles(smiles))


def test_explicit_hydrogens_and_conformers() -> None:
    mol = Chem.AddHs(Chem.MolFromSmiles("OC(=O)c1ccccc1O"))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    assert mol.GetNumConformers() == 1
    assert assert_reader_matches_getters(mol)
    from_block = Chem.MolFromMolBlock(Chem.MolToMolBlock(mol), removeHs=False)
    assert assert_reader_matches_getters(from_block)


@pytest.mark.parametrize(
    "smiles",
    ["[2H]C", "[13CH4]", "[CH3:1]C", "*C", "C" * 300],  # isotope, map number, dummy, > 255 atoms
)
def test_declines_what_it_does_not_decode(smiles: str) -> None:
    mol = Chem.MolFromSmiles(smiles)
    assert read_raw_arrays(mol) is None
    graph = featurize(mol)  # the getters take over
    assert graph.num_nodes == mol.GetNumAtoms()


def test_declines_query_molecules_and_other_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_raw_arrays(Chem.MolFromSmarts("[C,N]=O")) is None
    monkeypatch.setattr(rdkit_pickle, "SUPPORTED_VERSIONS", set())
    assert read_raw_arrays(Chem.MolFromSmiles("CCO")) is None


def test_decoding_cache_can_be_emptied(
    monkeypatch: pytest.MonkeyPatch, moses_smiles: list[str]
) -> None:
    monkeypatch.setattr(rdkit_pickle, "_CACHE_LIMIT", 3)
    rdkit_pickle._atoms.clear(), rdkit_pickle._bonds.clear()
    for smiles in moses_smiles[:50]:
        assert assert_reader_matches_getters(Chem.MolFromSmiles(smiles))
    assert len(rdkit_pickle._atoms) <= 3 and len(rdkit_pickle._bonds) <= 3
