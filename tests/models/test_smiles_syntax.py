"""SMILES syntax constraints: the tracker accepts real SMILES and sampling with it stays syntactic."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from rdkit import Chem

from molfm.models.registry import load_smiles_model
from molfm.models.sampling import sample
from molfm.models.smiles_syntax import ATOM, BOND, CLOSE, OPEN, RING, SmilesSyntax, token_kind

DATA = Path(__file__).parents[1] / "data"
TINY = DATA / "tiny-gp-molformer"


@pytest.fixture(scope="module")
def tiny():
    return load_smiles_model(TINY)


def balanced(smiles: str, tokenizer) -> bool:
    """Independent check: branches balanced and non-empty, every ring label paired."""
    if not smiles:
        return False
    depth, rings = 0, set()
    previous = None
    for token in tokenizer.tokenize(smiles):
        if token == "(":
            depth += 1
        elif token == ")":
            if depth == 0 or previous == "(":
                return False
            depth -= 1
        elif token_kind(token) == RING:
            rings ^= {token}
        previous = token
    return depth == 0 and not rings and token_kind(previous) in (ATOM, RING, CLOSE)


def test_token_kinds():
    assert [token_kind(t) for t in ["c", "[nH]", "Cl", "=", "(", ")", "1", "%12"]] == [
        ATOM,
        ATOM,
        ATOM,
        BOND,
        OPEN,
        CLOSE,
        RING,
        RING,
    ]


def test_real_smiles_are_never_banned(tiny):
    """Every token of 200 real MOSES molecules (and their <eos>) is allowed in its context."""
    _, tokenizer = tiny
    syntax = SmilesSyntax(tokenizer)
    smiles = pd.read_csv(DATA / "moses_train_500.csv")["SMILES"].tolist()[:200]
    for text in smiles:
        state = syntax.init_state(1)
        for token in [*tokenizer.encode(text, add_special=False), tokenizer.eos_id]:
            assert not syntax.banned(state)[0, token], (text, tokenizer.id_to_token(token))
            state = syntax.update(state, torch.tensor([token]))


@pytest.mark.parametrize(
    "prefix, token, banned",
    [
        ("", "(", True),  # nothing to branch from
        ("", "1", True),
        ("C", "<eos>", False),
        ("C1CC", "<eos>", True),  # ring 1 open
        ("C1CC", "1", False),
        ("C1", "1", True),  # C11: self-bond
        ("C(", ")", True),  # empty branch
        ("C(C", "<eos>", True),  # branch open
        ("C(C", ")", False),
        ("C", ")", True),  # no branch open
        ("C=", "<eos>", True),  # ends on a bond
        ("C=", "=", True),
        ("C(C)", "1", True),  # ring label after ')'
        ("CC=", "1", False),  # bond then ring label is fine: C=1...
        ("C1C", "1", True),  # C1C1 would double the C-C bond
        ("C1CC", "1", False),
        ("C1(C)C", "1", True),  # after the branch the chain goes on from atom 0
        ("C1C(C)C", "1", False),  # a 4-ring: atom 3 hangs from atom 1, not atom 0
        ("C1C(C", "1", False),  # inside the branch: closes a 3-ring
        ("C1(C)", "1", True),  # ring label after )
    ],
)
def test_rules(tiny, prefix, token, banned):
    _, tokenizer = tiny
    syntax = SmilesSyntax(tokenizer)
    ids = tokenizer.encode(prefix, add_special=False) if prefix else []
    state = syntax.feed(ids)
    token_id = tokenizer.eos_id if token == "<eos>" else tokenizer.token_to_id(token)
    assert bool(syntax.banned(state)[0, token_id]) is banned


def test_untrained_model_samples_are_syntactic(tiny):
    """Even a randomly initialised model writes only syntactically complete SMILES."""
    model, tokenizer = tiny
    torch.manual_seed(0)
    random_model = type(model)(model.config)
    smiles = sample(random_model, tokenizer, 64, batch_size=16, seed=1, syntax_mask=True)
    finished = [s for s, t in zip(smiles, smiles.truncated, strict=True) if not t]
    assert len(finished) >= 8  # (a random walk often runs to max_length)
    assert all(balanced(s, tokenizer) for s in finished)
    # without the mask the same random model ends strings mid-syntax
    plain = sample(random_model, tokenizer, 64, batch_size=16, seed=1)
    plain_finished = [s for s, t in zip(plain, plain.truncated, strict=True) if not t]
    assert sum(not balanced(s, tokenizer) for s in plain_finished) >= 8


def test_mask_raises_validity_of_the_tiny_model(tiny):
    model, tokenizer = tiny
    plain = sample(model, tokenizer, 200, batch_size=100, seed=0)
    masked = sample(model, tokenizer, 200, batch_size=100, seed=0, syntax_mask=True)

    def valid(samples):
        return sum(Chem.MolFromSmiles(s) is not None for s in samples if s)

    assert all(balanced(s, tokenizer) for s, t in zip(masked, masked.truncated) if not t)
    assert valid(masked) >= valid(plain)


def test_prefix_is_tracked(tiny):
    """A prompt that opens a ring must be closed by the sample."""
    model, tokenizer = tiny
    prefix = tokenizer.encode("c1ccc(", add_special=False)
    smiles = sample(
        model, tokenizer, 32, batch_size=32, seed=0, prefix_ids=prefix, syntax_mask=True
    )
    assert all(s.startswith("c1ccc(") for s in smiles)
    assert all(balanced(s, tokenizer) for s, t in zip(smiles, smiles.truncated) if not t)
