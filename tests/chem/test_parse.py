from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdkit import Chem, rdBase

from molfm.chem.featurize import featurize
from molfm.chem.parse import (
    InvalidMoleculeError,
    ParseResult,
    StandardizeOptions,
    canonical_smiles,
    mol_or_none,
    parse_smiles,
    rdkit_messages,
    try_parse_smiles,
)

BAD_INPUTS = [
    ("", "empty SMILES"),
    ("   ", "empty SMILES"),
    ("xyz", "syntax error while parsing: xyz"),
    ("C1CC", "unclosed ring"),
    ("N(C)(C)(C)(C)C", "Explicit valence for atom # 0 N, 5, is greater than permitted"),
    ("c1cccc1", "Can't kekulize mol"),
    (None, "missing value"),
    (float("nan"), "missing value"),
    (np.float64("nan"), "missing value"),
    ("C\u00e9C", "non-ASCII character 'é' at position 1"),
    ("CC O", "whitespace"),  # RDKit alone would return ethane and call "O" the name
    ("C\x00C", "control character"),
    (42, "expected a SMILES string, got int"),
    (b"CCO", "expected a SMILES string, got bytes"),
    ("C(", "syntax error"),
    ("C)", "extra close parentheses"),
]


@pytest.mark.parametrize(("value", "expected"), BAD_INPUTS, ids=[repr(v) for v, _ in BAD_INPUTS])
def test_bad_input_raises_with_reason(value: object, expected: str) -> None:
    with pytest.raises(InvalidMoleculeError) as info:
        parse_smiles(value, row=7)
    err = info.value
    assert expected in err.reason
    assert err.row == 7
    assert err.value is value
    assert str(err).startswith("row 7: ")
    result = try_parse_smiles(value)
    assert not result.ok and result.mol is None and result.reason == err.reason


def test_error_message_format() -> None:
    with pytest.raises(InvalidMoleculeError) as info:
        parse_smiles("C1CC", row=17)
    assert str(info.value) == "row 17: 'C1CC' : unclosed ring"
    with pytest.raises(InvalidMoleculeError) as info:
        parse_smiles("C1CC")
    assert str(info.value) == "'C1CC' : unclosed ring"


def test_error_survives_pickling_and_with_row() -> None:
    err = InvalidMoleculeError("C1CC", "unclosed ring", row=3)
    back = pickle.loads(pickle.dumps(err))
    assert (back.value, back.reason, back.row, str(back)) == ("C1CC", "unclosed ring", 3, str(err))
    assert err.with_row(9).row == 9 and err.with_row(9).reason == "unclosed ring"
    assert isinstance(err, ValueError)


def test_max_heavy_atoms() -> None:
    big = "C" * 150
    with pytest.raises(InvalidMoleculeError) as info:
        parse_smiles(big, max_heavy_atoms=100)
    assert info.value.reason == "150 heavy atoms exceeds max_heavy_atoms=100"
    assert "..." in str(info.value)  # long values are shortened in the message only
    assert info.value.value == big
    assert parse_smiles(big, max_heavy_atoms=150).GetNumHeavyAtoms() == 150


def test_salt_kept_unless_largest_fragment() -> None:
    salt = "CC(=O)[O-].[Na+]"
    assert canonical_smiles(parse_smiles(salt)) == "CC(=O)[O-].[Na+]"
    largest = parse_smiles(salt, standardize=StandardizeOptions(largest_fragment=True))
    assert canonical_smiles(largest) == "CC(=O)[O-]"
    both = StandardizeOptions(largest_fragment=True, neutralize=True)
    assert canonical_smiles(parse_smiles(salt, standardize=both)) == "CC(=O)O"


def test_neutralize() -> None:
    mol = parse_smiles("C[NH3+]", standardize=StandardizeOptions(neutralize=True))
    assert canonical_smiles(mol) == "CN"
    # A quaternary ammonium has no neutral form and stays charged.
    quat = parse_smiles("C[N+](C)(C)C", standardize=StandardizeOptions(neutralize=True))
    assert Chem.GetFormalCharge(quat) == 1


def test_heavy_atom_limit_applies_after_standardization() -> None:
    salt = "CCCCCC(=O)[O-].[Na+]"  # 9 heavy atoms, 8 in the largest fragment
    with pytest.raises(InvalidMoleculeError):
        parse_smiles(salt, max_heavy_atoms=8)
    opts = StandardizeOptions(largest_fragment=True)
    assert parse_smiles(salt, standardize=opts, max_heavy_atoms=8).GetNumAtoms() == 8


def test_canonical_option_fixes_atom_order() -> None:
    opts = StandardizeOptions()
    a = parse_smiles("OCC", standardize=opts)
    b = parse_smiles("C(O)C", standardize=opts)
    assert [x.GetSymbol() for x in a.GetAtoms()] == [x.GetSymbol() for x in b.GetAtoms()]
    raw = parse_smiles("OCC")
    assert raw.GetAtomWithIdx(0).GetSymbol() == "O"  # no standardization: input order


def test_standardize_options_to_dict() -> None:
    opts = StandardizeOptions(largest_fragment=True)
    assert opts.to_dict() == {"largest_fragment": True, "neutralize": False, "canonical": True}
    assert StandardizeOptions(**opts.to_dict()) == opts


def test_valid_smiles_and_try_parse() -> None:
    result = try_parse_smiles("c1ccccc1O")
    assert isinstance(result, ParseResult) and result.ok and result.reason is None
    assert canonical_smiles(result.mol) == "Oc1ccccc1"
    assert canonical_smiles(parse_smiles("  CCO\n")) == "CCO"  # outer whitespace stripped
    chiral = parse_smiles("C[C@H](N)O")
    assert "@" in canonical_smiles(chiral) and "@" not in canonical_smiles(chiral, isomeric=False)


def test_pandas_missing_values() -> None:
    pd = pytest.importorskip("pandas")
    assert "missing" in try_parse_smiles(pd.NA).reason
    frame = pd.DataFrame({"smiles": ["CCO", None, "C1CC"]})
    reasons = [try_parse_smiles(v).reason for v in frame["smiles"]]
    assert reasons[0] is None and "missing" in reasons[1] and reasons[2] == "unclosed ring"


def test_reasons_are_per_molecule() -> None:
    first = try_parse_smiles("C1CC").reason
    assert try_parse_smiles("CCO").ok
    second = try_parse_smiles("N(C)(C)(C)(C)C").reason
    assert first == "unclosed ring"
    assert "unclosed" not in second and "valence" in second


def test_no_stderr_spam_and_logging_left_on(capfd: pytest.CaptureFixture[str]) -> None:
    before = rdBase.LogStatus()
    for bad in ("C1CC", "xyz", "N(C)(C)(C)(C)C", "c1cccc1"):
        assert not try_parse_smiles(bad).ok
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    assert rdBase.LogStatus() == before
    assert "rdApp.error:enabled" in rdBase.LogStatus()


def test_rdkit_messages_condenses_log() -> None:
    log = (
        "[10:00:00] SMILES Parse Error: syntax error while parsing: xyz\n"
        "[10:00:00] SMILES Parse Error: check for mistakes around position 1:\n"
        "[10:00:00] xyz\n"
        "[10:00:00] ^\n"
        "[10:00:00] SMILES Parse Error: Failed parsing SMILES 'xyz' for input: 'xyz'\n"
    )
    assert rdkit_messages(log, "xyz") == (
        "syntax error while parsing: xyz; check for mistakes around position 1"
    )
    assert rdkit_messages("") == ""


SMILES_ALPHABET = "CNOSPFIBrcnos()[]=#@+-123456789%/\\.H*:"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=40), st.text(alphabet=SMILES_ALPHABET, max_size=30)))
def test_random_text_only_raises_invalid_molecule(text: str) -> None:
    try:
        mol = parse_smiles(text, max_heavy_atoms=200)
    except InvalidMoleculeError as err:
        assert err.reason
        assert not try_parse_smiles(text, max_heavy_atoms=200).ok
        return
    graph = featurize(mol)
    n, m = mol.GetNumAtoms(), mol.GetNumBonds()
    assert n > 0
    assert graph.x.shape == (n, 9) and graph.x.dtype == np.int64
    assert graph.edge_index.shape == (2, 2 * m) and graph.edge_attr.shape == (2 * m, 3)
    assert graph.x.min() >= 0 and (graph.x < np.array([119, 5, 12, 12, 10, 6, 6, 2, 2])).all()
    if m:
        assert graph.edge_index.max() < n
        assert (graph.edge_attr < np.array([5, 6, 2])).all()


LENIENT_CASES = [
    # (input, canonical SMILES by the MOSES rules, or None when invalid)
    ("OCC", "CCO"),
    ("C(C)O", "CCO"),
    ("c1ccccc1O", "Oc1ccccc1"),
    ("C[C@H](N)O", "C[C@H](N)O"),
    ("C C", "C"),  # RDKit stops at a space (the rest is a name); MOSES counts it valid
    ("", None),
    (" ", None),
    ("C1CC", None),  # unclosed ring
    ("N(C)(C)(C)(C)C", None),  # pentavalent nitrogen
    ("c1cccc1", None),  # cannot be kekulized
    ("xyz", None),
    (None, None),
    (float("nan"), None),
    (17, None),
]


@pytest.mark.parametrize(("value", "expected"), LENIENT_CASES)
def test_lenient_parse_and_canonical_smiles(value: object, expected: str | None) -> None:
    mol = mol_or_none(value)
    assert (mol is None) == (expected is None)
    assert canonical_smiles(value) == expected
    if mol is not None:
        assert Chem.MolToSmiles(mol) == expected
        assert canonical_smiles(mol) == expected  # a Mol passes through


def test_lenient_and_strict_parsers_agree_on_data(moses_smiles: list[str]) -> None:
    for smiles in moses_smiles[:100]:
        strict = parse_smiles(smiles)
        assert canonical_smiles(smiles) == canonical_smiles(strict) == Chem.MolToSmiles(strict)
        # MOSES stores canonical non-isomeric SMILES: canonicalizing again changes nothing
        assert canonical_smiles(canonical_smiles(smiles)) == canonical_smiles(smiles)
    # Of the inputs the strict parser rejects, the lenient one accepts only text with a space
    # (RDKit reads the part before it), as MOSES does.
    accepted = [value for value, _ in BAD_INPUTS if mol_or_none(value) is not None]
    assert accepted == ["CC O"] and canonical_smiles("CC O") == "CC"


def test_canonical_smiles_isomeric_flag() -> None:
    assert canonical_smiles("C[C@@H](N)O") != canonical_smiles("C[C@H](N)O")
    assert canonical_smiles("C[C@@H](N)O", isomeric=False) == "CC(N)O"
    assert canonical_smiles("[13CH4]", isomeric=False) == "C"
    assert canonical_smiles("C1CC", isomeric=False) is None


def test_mol_or_none_logs_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    assert mol_or_none("C1CC") is None and mol_or_none("c1cccc1") is None
    assert capfd.readouterr().err == ""
