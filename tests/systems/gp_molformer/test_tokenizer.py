"""Tests for the regex SMILES tokenizer on real MOSES SMILES."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer, UnknownTokenError, tokenize_smiles

DATA = Path(__file__).parents[2] / "data" / "moses_train_500.csv"


@pytest.fixture(scope="module")
def moses() -> list[str]:
    with DATA.open() as fh:
        rows = [row["SMILES"] for row in csv.DictReader(fh)]
    assert len(rows) == 500
    return rows


@pytest.fixture(scope="module")
def tok(moses: list[str]) -> SmilesTokenizer:
    return SmilesTokenizer.build(moses)


def test_round_trip_all_moses(moses: list[str], tok: SmilesTokenizer) -> None:
    for s in moses:
        tokens = tok.tokenize(s)
        assert "".join(tokens) == s
        ids = tok.encode(s)
        assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
        assert len(ids) == len(tokens) + 2
        assert tok.decode(ids) == s


def test_vocab_built_from_data(moses: list[str], tok: SmilesTokenizer) -> None:
    seen = {t for s in moses for t in tokenize_smiles(s)}
    assert set(tok.tokens[4:]) == seen
    assert tok.vocab_size == len(seen) + 4
    for t in ("Cl", "Br", "[nH]", "c", "=", "(", ")"):
        assert tok.token_to_id(t) is not None, t
    # Two-letter atoms are single tokens, their letters alone are not tokens.
    assert tok.token_to_id("l") is None and tok.token_to_id("r") is None
    # Ordered by frequency: carbon is the most common token in MOSES.
    assert tok.tokens[4] in ("C", "c")


def test_special_ids(tok: SmilesTokenizer) -> None:
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.tokens[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert tok.encode("CCO", add_special=False) == [tok.token_to_id(t) for t in "CCO"]


@pytest.mark.parametrize(
    ("smiles", "expected"),
    [
        ("C[C@@H](N)C(=O)O", ["C", "[C@@H]", "(", "N", ")", "C", "(", "=", "O", ")", "O"]),
        ("c1cc[nH]c1", ["c", "1", "c", "c", "[nH]", "c", "1"]),
        ("C[N+](C)(C)C.[O-]", ["C", "[N+]", "(", "C", ")", "(", "C", ")", "C", ".", "[O-]"]),
        ("ClCBr", ["Cl", "C", "Br"]),
        ("BC", ["B", "C"]),
        ("C%10CCCCCCCCC%10", ["C", "%10", *["C"] * 9, "%10"]),
        ("C1CC2CC12", ["C", "1", "C", "C", "2", "C", "C", "1", "2"]),
        ("F/C=C/F", ["F", "/", "C", "=", "C", "/", "F"]),
        ("F\\C=C\\F", ["F", "\\", "C", "=", "C", "\\", "F"]),
        ("C#N", ["C", "#", "N"]),
        ("[13CH3][2H]", ["[13CH3]", "[2H]"]),
        ("[Na+].[Cl-]", ["[Na+]", ".", "[Cl-]"]),
        ("*c1ccccc1", ["*", "c", "1", "c", "c", "c", "c", "c", "1"]),
        (
            "c1ccsc1P(=S)(I)F",
            ["c", "1", "c", "c", "s", "c", "1", "P", "(", "=", "S", ")", "(", "I", ")", "F"],
        ),
    ],
)
def test_tokenize_examples(smiles: str, expected: list[str]) -> None:
    assert tokenize_smiles(smiles) == expected
    assert "".join(expected) == smiles


@pytest.mark.parametrize(
    ("smiles", "position"),
    [("CC[C@@H", 2), ("CCX", 2), ("C C", 1), ("C1CC%1", 4), ("Cc1ccccc1]", 9)],
)
def test_uncoverable_smiles_names_position(smiles: str, position: int) -> None:
    with pytest.raises(ValueError) as err:
        tokenize_smiles(smiles)
    message = str(err.value)
    assert repr(smiles) in message
    assert f"position {position}" in message


def test_empty_smiles_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        tokenize_smiles("")


def test_unknown_token_error_names_tokens(tok: SmilesTokenizer) -> None:
    smiles = "C[C@@H](Br)[Se]C"
    assert tok.token_to_id("[C@@H]") is None
    with pytest.raises(UnknownTokenError) as err:
        tok.encode(smiles)
    assert isinstance(err.value, ValueError)
    message = str(err.value)
    assert repr(smiles) in message and "'[C@@H]'" in message and "'[Se]'" in message
    assert "'Br'" not in message  # Br is in the MOSES vocabulary
    assert err.value.tokens == ["[C@@H]", "[Se]"]
    ids = tok.encode(smiles, unknown="unk")
    assert ids.count(tok.unk_id) == 2
    assert tok.decode(ids) == "C(Br)C"  # <unk> is skipped like every special token


def test_min_frequency(moses: list[str]) -> None:
    full = SmilesTokenizer.build(moses)
    pruned = SmilesTokenizer.build(moses, min_frequency=50)
    assert pruned.vocab_size < full.vocab_size
    assert pruned.token_to_id("C") is not None
    with pytest.raises(ValueError):
        SmilesTokenizer.build(moses, min_frequency=0)


def test_build_rejects_bad_smiles() -> None:
    with pytest.raises(ValueError, match="CC\\[N"):
        SmilesTokenizer.build(["CCO", "CC[N"])


def test_decode_stops_at_eos_and_skips_specials(tok: SmilesTokenizer) -> None:
    c, o = tok.token_to_id("C"), tok.token_to_id("O")
    assert tok.decode([tok.bos_id, c, tok.pad_id, o, tok.eos_id, c, c]) == "CO"
    assert tok.decode(torch.tensor([tok.bos_id, c, c, o])) == "CCO"  # no eos: decode all
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([c, tok.vocab_size])


def test_serialization_round_trip(tok: SmilesTokenizer, tmp_path: Path) -> None:
    data = tok.to_dict()
    assert json.loads(json.dumps(data)) == data
    again = SmilesTokenizer.from_dict(data)
    assert again == tok and again.tokens == tok.tokens
    path = tok.save(tmp_path / "vocab.json")
    loaded = SmilesTokenizer.load(path)
    assert loaded == tok
    assert loaded.encode("c1ccccc1Cl") == tok.encode("c1ccccc1Cl")
    with pytest.raises(ValueError, match="format"):
        SmilesTokenizer.from_dict({"tokens": ["C"]})


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        SmilesTokenizer(["C", "C"])
    with pytest.raises(ValueError, match="special"):
        SmilesTokenizer(["C", "<eos>"])


def test_encode_batch(moses: list[str], tok: SmilesTokenizer) -> None:
    batch = moses[:5]
    ids, lengths = tok.encode_batch(batch, max_length=100)
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.shape == (5, int(lengths.max()))
    for row, s, n in zip(ids, batch, lengths.tolist(), strict=True):
        assert row[:n].tolist() == tok.encode(s)
        assert (row[n:] == tok.pad_id).all()
    too_short = int(lengths.max()) - 1
    with pytest.raises(ValueError, match="max_length"):
        tok.encode_batch(batch, max_length=too_short)
