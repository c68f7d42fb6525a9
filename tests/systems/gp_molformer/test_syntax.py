"""SMILES syntax constraints: the tracker accepts real SMILES and sampling with it stays syntactic."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from rdkit import Chem, rdBase

from molfm.systems.gp_molformer import syntax as smiles_syntax
from molfm.systems.gp_molformer.model import load_smiles_model
from molfm.systems.gp_molformer.sampling import sample
from molfm.systems.gp_molformer.syntax import (
    ATOM,
    BOND,
    CLOSE,
    FINISH_SLACK,
    OPEN,
    RING,
    SmilesSyntax,
    token_kind,
)

DATA = Path(__file__).parents[2] / "data"
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
        ("C12CC1", "2", True),  # atoms 0 and 3 are already ring-bonded through label 1
        ("C12CC1C", "2", False),  # C12CC1C2: atom 4 is a new partner
        ("C(=", "1", True),  # a bond opening a branch bonds to an atom
        ("C(C)=", "1", True),
        ("C(C)=", "C", False),
        ("C1=", "2", False),  # C1=2: a second ring bond, double
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

    def valid(samples, sanitize=True):
        with rdBase.BlockLogs():
            return sum(Chem.MolFromSmiles(s, sanitize=sanitize) is not None for s in samples if s)

    assert all(balanced(s, tokenizer) for s, t in zip(masked, masked.truncated) if not t)
    # measured with seed 0: RDKit reads 39 plain and 200 masked samples; 5 and 10 sanitize
    assert valid(plain, sanitize=False) <= 100 and valid(masked, sanitize=False) == 200
    assert valid(masked) > valid(plain)


def test_prefix_is_tracked(tiny):
    """A prompt that opens a ring must be closed by the sample."""
    model, tokenizer = tiny
    prefix = tokenizer.encode("c1ccc(", add_special=False)
    smiles = sample(
        model, tokenizer, 32, batch_size=32, seed=0, prefix_ids=prefix, syntax_mask=True
    )
    assert all(s.startswith("c1ccc(") for s in smiles)
    assert smiles.n_truncated <= 4  # (0 measured) so the check below covers most samples
    assert all(balanced(s, tokenizer) for s, t in zip(smiles, smiles.truncated) if not t)


def test_length_budget_only_closes(tiny):
    """Near the length limit a row may only close what is open, then end."""
    _, tokenizer = tiny
    syntax = SmilesSyntax(tokenizer)
    state = syntax.feed(tokenizer.encode("c1ccc(C", add_special=False))  # ring 1 + a branch
    tid = tokenizer.token_to_id
    free = syntax.banned(state)[0]
    assert not free[tid("(")] and not free[tid("2")] and not free[tid("C")]
    near = syntax.banned(state, remaining=2 + FINISH_SLACK)[0]  # ring 1 and a branch open
    assert near[tid("(")] and near[tid("2")] and near[tid("=")] and near[tid("C")]
    assert not near[tid(")")] and near[tokenizer.eos_id]
    assert torch.equal(syntax.banned(state, remaining=3 + FINISH_SLACK), syntax.banned(state))
    # a ring just opened on the current atom costs two more atoms before it can close
    fresh = syntax.feed(tokenizer.encode("CCc1", add_special=False))
    assert syntax.banned(fresh, remaining=1 + 2 + FINISH_SLACK)[0, tid("2")]
    assert torch.equal(syntax.banned(fresh, remaining=4 + FINISH_SLACK), syntax.banned(fresh))
    # right after an atom that opened ring 1, no closer is allowed: an atom is, then 1 closes
    state = syntax.feed(tokenizer.encode("CCc1", add_special=False))
    near = syntax.banned(state, remaining=3)[0]
    assert not near[tid("c")] and near[tid("1")] and near[tid("(")]
    state = syntax.update(state, torch.tensor([tid("c")]))  # bonded to the opener: c1c1 is out
    near = syntax.banned(state, remaining=3)[0]
    assert not near[tid("c")] and near[tid("1")]
    state = syntax.update(state, torch.tensor([tid("c")]))
    near = syntax.banned(state, remaining=2)[0]
    assert near[tid("c")] and not near[tid("1")]


def test_untrained_model_finishes_within_the_length_limit(tiny, monkeypatch):
    """With the budget, a random model's constrained samples end instead of running to the
    limit, and stay syntactic."""
    model, tokenizer = tiny
    torch.manual_seed(0)
    random_model = type(model)(model.config)
    smiles = sample(random_model, tokenizer, 64, batch_size=16, seed=1, syntax_mask=True)
    assert all(balanced(s, tokenizer) for s, t in zip(smiles, smiles.truncated) if not t)
    monkeypatch.setattr(smiles_syntax, "FINISH_SLACK", -1000)  # no budget
    unbounded = sample(random_model, tokenizer, 64, batch_size=16, seed=1, syntax_mask=True)
    assert unbounded.n_truncated >= 16
    assert smiles.n_truncated <= unbounded.n_truncated / 4


def test_constrained_samples_always_parse(tiny):
    """With the mask every sample RDKit reads at all (sanitization aside) unless truncated:
    no unclosed ring or branch, no doubled bond through ring labels."""
    model, tokenizer = tiny
    torch.manual_seed(0)
    random_model = type(model)(model.config)
    for m in (model, random_model):
        smiles = sample(m, tokenizer, 200, batch_size=100, seed=2, syntax_mask=True)
        for s, truncated in zip(smiles, smiles.truncated, strict=True):
            assert truncated or Chem.MolFromSmiles(s, sanitize=False) is not None, s
