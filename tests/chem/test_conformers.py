from __future__ import annotations

import pickle
import time

import numpy as np
import pytest

from molfm.chem.conformers import (
    ConformerError,
    ConformerOptions,
    ConformerResult,
    generate_conformer,
    generate_conformers,
)
from molfm.chem.geometry import bond_index, bond_lengths
from molfm.chem.parse import InvalidMoleculeError, parse_smiles

# A cyclic 20-residue leucine peptide: ETKDG needs several seconds for it.
MACROCYCLE = "C1" + "C(=O)NC(CC(C)C)" * 20 + "C(=O)N1"


def test_generate_conformer_shapes_and_values() -> None:
    mol = parse_smiles("CC(=O)Nc1ccc(O)cc1")
    pos = generate_conformer(mol)
    assert pos.shape == (mol.GetNumAtoms(), 3) and pos.dtype == np.float32
    lengths = bond_lengths(pos, bond_index(mol))
    assert lengths.min() > 1.1 and lengths.max() < 1.6  # heavy-atom bonds in Angstrom
    assert np.abs(pos).max() > 0.5  # not collapsed onto the origin


def test_seeded_and_reproducible() -> None:
    mol = parse_smiles("CCCCOC(=O)c1ccccc1")
    a = generate_conformer(mol, ConformerOptions(seed=1))
    b = generate_conformer(mol, ConformerOptions(seed=1))
    c = generate_conformer(mol, ConformerOptions(seed=2, optimize=None))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("optimize", [None, "mmff", "uff"])
def test_optimizers(optimize: str | None) -> None:
    pos = generate_conformer(parse_smiles("CCO"), ConformerOptions(optimize=optimize))
    assert pos.shape == (3, 3)


def test_single_atom_molecule() -> None:
    pos = generate_conformer(parse_smiles("C"))  # methane: hydrogens make it a real embedding
    assert pos.shape == (1, 3) and np.all(np.isfinite(pos))


def test_mmff_setup_failure_is_reported() -> None:
    mol = parse_smiles("B(C)(C)C")  # MMFF94 has no boron types
    with pytest.raises(ConformerError, match="MMFF setup failed"):
        generate_conformer(mol)
    assert generate_conformer(mol, ConformerOptions(optimize="uff")).shape == (4, 3)


def test_conformer_error_is_invalid_molecule_error() -> None:
    err = ConformerError("CC", "embedding failed", row=2)
    assert isinstance(err, InvalidMoleculeError)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ConformerError and back.row == 2 and str(back) == str(err)


def test_options_validation_and_dict() -> None:
    opts = ConformerOptions(seed=3, optimize=None)
    assert ConformerOptions(**opts.to_dict()) == opts
    with pytest.raises(ValueError):
        ConformerOptions(optimize="amber")
    with pytest.raises(ValueError):
        ConformerOptions(timeout_s=0)
    with pytest.raises(ValueError):
        ConformerOptions(max_attempts=0)


def test_pool_results_in_order_with_reasons() -> None:
    smiles = ["CCO", "C1CC", "c1ccccc1", None, "CC(=O)O"]
    results = generate_conformers(smiles, ConformerOptions(optimize=None), processes=2)
    assert [r.index for r in results] == list(range(5))
    assert all(isinstance(r, ConformerResult) for r in results)
    assert [r.ok for r in results] == [True, False, True, False, True]
    assert results[1].reason == "unclosed ring" and "missing" in results[3].reason
    assert results[2].positions.shape == (6, 3) and results[4].positions.shape == (4, 3)
    assert results[0].smiles == "CCO" and results[3].smiles == "None"
    # Same seed, same molecule: the pool gives what the in-process function gives.
    direct = generate_conformer(parse_smiles("c1ccccc1"), ConformerOptions(optimize=None))
    np.testing.assert_allclose(results[2].positions, direct, atol=1e-5)


def test_pool_tiny_timeout_finishes_and_reports() -> None:
    options = ConformerOptions(timeout_s=0.02, optimize=None)
    start = time.perf_counter()
    results = generate_conformers([MACROCYCLE, MACROCYCLE], options, processes=1)
    assert time.perf_counter() - start < 30  # ETKDG alone needs seconds per macrocycle
    for result in results:
        assert result.reason == "timeout after 0.02 s (worker killed)"
        assert result.positions is None and result.seconds >= 0.02


def test_pool_replaces_killed_worker_and_continues() -> None:
    # The timeout leaves room for small molecules on a loaded machine, not for the macrocycle.
    smiles = ["CCO", MACROCYCLE, "CCN", "c1ccncc1"]
    results = generate_conformers(smiles, ConformerOptions(timeout_s=2.0), processes=1)
    assert results[1].reason == "timeout after 2 s (worker killed)"
    assert results[0].ok and results[2].ok and results[3].ok
    assert results[3].positions.shape == (6, 3)


def test_pool_empty_and_bad_processes() -> None:
    assert generate_conformers([], ConformerOptions()) == []
    with pytest.raises(ValueError):
        generate_conformers(["C"], ConformerOptions(), processes=0)
