from __future__ import annotations

import pytest
from rdkit import Chem

from molfm.chem.parse import parse_smiles
from molfm.chem.properties import (
    FUNCTIONAL_GROUPS,
    functional_group_counts,
    logp,
    molecular_weight,
    penalized_logp,
    qed,
    sa_score,
)

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


def test_aspirin_reference_values() -> None:
    mol = parse_smiles(ASPIRIN)
    assert qed(mol) == pytest.approx(0.5501, abs=1e-3)  # Bickerton et al. / RDKit QED
    assert logp(mol) == pytest.approx(1.3101, abs=1e-4)
    assert molecular_weight(mol) == pytest.approx(180.159, abs=1e-3)
    assert sa_score(mol) == pytest.approx(1.58, abs=0.01)


def test_simple_values() -> None:
    assert molecular_weight(parse_smiles("O")) == pytest.approx(18.015, abs=1e-3)
    assert logp(parse_smiles("CCO")) == pytest.approx(-0.0014, abs=1e-4)


def test_penalized_logp_ring_penalty() -> None:
    for smiles, ring_penalty in (("C1CCCCCCC1", 2), ("c1ccccc1CCO", 0), ("CCCCCC", 0)):
        mol = parse_smiles(smiles)
        expected = logp(mol) - sa_score(mol) - ring_penalty
        assert penalized_logp(mol) == pytest.approx(expected)


def test_sa_score_ranks_easy_below_hard() -> None:
    easy = sa_score(parse_smiles("CCO"))
    hard = sa_score(parse_smiles("C[C@H]1C[C@@]23C[C@@H]4[C@H](C)[C@]2(O)[C@@H](O)[C@@]14C3"))
    assert 1.0 <= easy < hard <= 10.0


def test_properties_on_moses_slice(moses_smiles: list[str]) -> None:
    for smiles in moses_smiles[:100]:
        mol = parse_smiles(smiles)
        assert 0.0 <= qed(mol) <= 1.0
        assert 1.0 <= sa_score(mol) <= 10.0
        assert 100 < molecular_weight(mol) < 600  # MOSES: clean leads, 250-350 Da mostly


def test_functional_group_counts() -> None:
    counts = functional_group_counts(parse_smiles(ASPIRIN))
    assert set(counts) == set(FUNCTIONAL_GROUPS) and len(FUNCTIONAL_GROUPS) == 85
    assert counts["ester"] == 1 and counts["benzene"] == 1 and counts["COO"] == 1
    assert counts["amide"] == 0 and all(isinstance(v, int) for v in counts.values())
    assert functional_group_counts(Chem.MolFromSmiles("CC(=O)NC"))["amide"] == 1


def test_property_registry() -> None:
    from molfm.chem.properties import PROPERTIES, get_property

    assert PROPERTIES == {
        "qed": qed,
        "logp": logp,
        "sa": sa_score,
        "mw": molecular_weight,
        "plogp": penalized_logp,
    }
    mol = parse_smiles(ASPIRIN)
    assert get_property("QED") is qed and get_property("plogp")(mol) == penalized_logp(mol)
    with pytest.raises(KeyError, match="unknown property 'drd2'; known: logp, mw, plogp, qed, sa"):
        get_property("drd2")
