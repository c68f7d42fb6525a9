"""MolCA's LM input: labels on target tokens only, graph embeddings in their slots, the loss."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from molfm.systems.molca.lm import tiny_llama, tiny_tokenizer
from molfm.systems.molca.prompt import (
    DEFAULT_TEMPLATE,
    IGNORE_INDEX,
    assemble_inputs,
    build_prompts,
    split_template,
)

SMILES = ["CCO", "c1ccccc1C(=O)O" * 12, "N"]  # the second is cut to 128 characters
TARGETS = ["ethanol", "a long acid", "ammonia, a gas"]
NQ = 4


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def lm():
    return tiny_llama()


def _graph_embeds(rows=3, dim=64, seed=0):
    return torch.randn(rows, NQ, dim, generator=torch.Generator().manual_seed(seed))


def test_labels_are_exactly_the_target_tokens(tok):
    batch = build_prompts(tok, SMILES, "Name it.", NQ, TARGETS, max_target_tokens=6)
    assert batch.attention_mask.dtype == torch.long and batch.graph_mask.dtype == torch.bool
    for i, target in enumerate(TARGETS):
        target_ids = tok(target, add_special_tokens=False)["input_ids"][:6] + [tok.eos_token_id]
        labelled = batch.labels[i] != IGNORE_INDEX
        assert batch.labels[i, labelled].tolist() == target_ids
        n = int(batch.attention_mask[i].sum())
        assert batch.attention_mask[i, :n].all() and not batch.attention_mask[i, n:].any()
        assert labelled[n - len(target_ids) : n].all()  # right padding: the target ends the row
        assert batch.input_ids[i, labelled].tolist() == target_ids
        slots = batch.graph_mask[i].nonzero().flatten()
        assert slots.tolist() == list(range(int(slots[0]), int(slots[0]) + NQ))
    before, _ = split_template(DEFAULT_TEMPLATE, SMILES[1], "Name it.")
    assert before == "Molecule: " + SMILES[1][:128]  # the graph slots follow the SMILES
    start = int(batch.graph_mask[1].nonzero()[0])
    assert tok.decode(batch.input_ids[1, :start]) == before


def test_graph_embeddings_fill_their_slots_and_the_rest_is_token_embeddings(tok, lm):
    batch = build_prompts(tok, SMILES, ["a", "b", "c"], NQ, TARGETS)
    graph = _graph_embeds()
    inputs = assemble_inputs(lm.get_input_embeddings(), batch, graph)
    embeds = inputs["inputs_embeds"]
    for i in range(3):
        assert torch.equal(embeds[i, batch.graph_mask[i]], graph[i])
    tokens = lm.get_input_embeddings()(batch.input_ids)
    assert torch.equal(embeds[~batch.graph_mask], tokens[~batch.graph_mask])
    with pytest.raises(ValueError, match="do not fit"):
        assemble_inputs(lm.get_input_embeddings(), batch, _graph_embeds()[:, :3])


def test_lm_loss_is_the_mean_cross_entropy_on_target_tokens(tok, lm):
    batch = build_prompts(tok, SMILES, "Describe the molecule.", NQ, TARGETS)
    graph = _graph_embeds().requires_grad_(True)
    inputs = assemble_inputs(lm.get_input_embeddings(), batch, graph)
    out = lm(**inputs)
    logits = out.logits[:, :-1]  # position t predicts token t + 1
    targets = batch.labels[:, 1:]
    keep = targets != IGNORE_INDEX
    by_hand = F.cross_entropy(logits[keep], targets[keep])
    assert keep.sum() == sum(len(tok(t)["input_ids"]) + 1 for t in TARGETS)
    assert_close(out.loss, by_hand)
    out.loss.backward()  # the frozen or not LM passes gradients to the graph embeddings
    assert graph.grad is not None and graph.grad.abs().sum(-1).gt(0).all()


def test_left_and_right_padding_give_the_same_rows(tok, lm):
    right = build_prompts(tok, SMILES, "Name it.", NQ, TARGETS, padding_side="right")
    left = build_prompts(tok, SMILES, "Name it.", NQ, TARGETS, padding_side="left")
    graph = _graph_embeds()
    embedding = lm.get_input_embeddings()
    with torch.no_grad():
        a = lm(**assemble_inputs(embedding, right, graph)).logits
        b = lm(**assemble_inputs(embedding, left, graph)).logits
    real_right, real_left = right.attention_mask.bool(), left.attention_mask.bool()
    assert_close(a[real_right], b[real_left], atol=1e-5, rtol=1e-4)
    assert torch.equal(right.position_ids[real_right], left.position_ids[real_left])


def test_generation_prompts_are_left_padded_without_labels(tok, lm):
    batch = build_prompts(tok, SMILES, "Name it.", NQ)
    assert (batch.labels == IGNORE_INDEX).all()
    assert batch.attention_mask[:, -1].all()  # left padding: every prompt ends the row
    inputs = assemble_inputs(lm.get_input_embeddings(), batch, _graph_embeds())
    inputs.pop("labels")
    with torch.no_grad():
        out = lm.generate(**inputs, max_new_tokens=3, do_sample=False)
        alone = build_prompts(tok, SMILES[:1], "Name it.", NQ)  # row 0 without padding
        inputs = assemble_inputs(lm.get_input_embeddings(), alone, _graph_embeds()[:1])
        inputs.pop("labels")
        out_alone = lm.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape == (3, 3)  # inputs_embeds only: generate returns the new tokens
    assert torch.equal(out[:1], out_alone)


def test_template_needs_one_graph_slot():
    with pytest.raises(ValueError, match="exactly one"):
        split_template("{smiles} {instruction}", "C", "x")
    before, after = split_template("{smiles}|{graph}|{instruction}", "C{1}", "say {smiles}")
    assert (before, after) == ("C{1}|", "|say {smiles}")
