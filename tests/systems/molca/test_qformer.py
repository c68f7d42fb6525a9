"""MolCA Q-Former: MiniLM initialization (text path = MiniLM), graph and joint paths."""

import pytest
import torch
from torch.testing import assert_close

from molfm.chem.featurize import smiles_to_data
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.nn.gine import GINEConfig, GINEEncoder
from molfm.systems.molca.qformer import (
    QFormer,
    QFormerConfig,
    load_qformer_tokenizer,
    minilm_path,
    multimodal_causal_mask,
)

TEXTS = ["The molecule is an aromatic carboxylic acid.", "ethanol", "A [CLS]-free, short one!"]


@pytest.fixture(scope="module")
def qformer():
    return QFormer.from_minilm().eval()


@pytest.fixture(scope="module")
def tokens():
    return load_qformer_tokenizer()(TEXTS, padding=True, return_tensors="pt")


def _nodes(batch=3, n=6, dim=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    nodes = torch.randn(batch, n, dim, generator=g)
    mask = torch.ones(batch, n, dtype=torch.bool)
    mask[1, 3:] = False
    mask[2, 5:] = False
    return nodes, mask


def test_text_path_reproduces_minilm(qformer, tokens):
    from transformers import AutoModel

    minilm = AutoModel.from_pretrained(minilm_path()).eval()
    with torch.no_grad():
        ours = qformer.encode_text(tokens["input_ids"], tokens["attention_mask"])
        reference = minilm(**tokens).last_hidden_state
    real = tokens["attention_mask"].bool()
    assert ours.shape == (3, tokens["input_ids"].shape[1], 384)
    assert_close(ours[real], reference[real])  # every real token's hidden state
    assert_close(ours[:, 0], reference[:, 0])  # [CLS]


def test_fresh_and_copied_weights(qformer):
    layers = qformer.bert.encoder.layer
    assert [hasattr(layer, "crossattention") for layer in layers] == [True, False] * 3
    for layer in layers:  # query feed-forward starts as a copy of the text one, not shared
        assert_close(layer.intermediate_query.dense.weight, layer.intermediate.dense.weight)
        assert_close(layer.output_query.LayerNorm.bias, layer.output.LayerNorm.bias)
        assert layer.output_query.dense.weight is not layer.output.dense.weight
    assert qformer.query_tokens.shape == (1, 8, 384)
    again = QFormer.from_minilm()  # fresh parts come from the seed
    assert torch.equal(again.query_tokens, qformer.query_tokens)
    assert torch.equal(
        again.bert.encoder.layer[0].crossattention.attention.key.weight,
        layers[0].crossattention.attention.key.weight,
    )


def test_graph_path_reads_only_real_nodes(qformer):
    nodes, mask = _nodes()
    with torch.no_grad():
        out = qformer.encode_graph(nodes, mask)
        moved = nodes.clone()
        moved[~mask] = 50.0  # padding rows hold anything
        assert_close(qformer.encode_graph(moved, mask), out)
        single = qformer.encode_graph(nodes[1:2, :3], mask[1:2, :3])  # unpadded alone
    assert out.shape == (3, 8, 384)
    assert_close(single, out[1:2], atol=1e-5, rtol=1e-4)


def test_joint_paths(qformer, tokens):
    nodes, mask = _nodes()
    ids, text_mask = tokens["input_ids"], tokens["attention_mask"]
    nq = qformer.num_query_tokens
    with torch.no_grad():
        queries = qformer.encode_graph(nodes, mask)
        causal = qformer.encode_joint(nodes, mask, ids, text_mask, causal=True)
        full = qformer.encode_joint(nodes, mask, ids, text_mask)
        changed = ids.clone()
        changed[0, 5] = 2003  # a later token: earlier ones cannot see it under the causal mask
        causal2 = qformer.encode_joint(nodes, mask, changed, text_mask, causal=True)
        full2 = qformer.encode_joint(nodes, mask, changed, text_mask)
    assert causal.shape == full.shape == (3, nq + ids.shape[1], 384)
    assert_close(causal[:, :nq], queries)  # queries never see text under the causal mask
    assert_close(causal2[0, : nq + 5], causal[0, : nq + 5])
    assert not torch.allclose(causal2[0, nq + 5], causal[0, nq + 5])
    assert not torch.allclose(full2[0, :nq], full[0, :nq])  # matching: queries see the text


def test_multimodal_causal_mask():
    text_mask = torch.tensor([[1, 1, 0]])
    allowed = multimodal_causal_mask(2, text_mask)[0, 0] == 0
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 0],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(allowed, expected)


def test_gine_to_queries_trains_end_to_end():
    """A real graph encoder feeds the Q-Former; gradients reach both."""
    graphs = [smiles_to_data(s) for s in ["CCO", "c1ccccc1C(=O)O", "CN"]]
    dataset = DenseGraphDataset(graphs)
    batch = collate_dense([dataset[i] for i in range(len(dataset))])
    torch.manual_seed(0)
    encoder = GINEEncoder(GINEConfig(num_layers=2, dim=32))
    small = QFormerConfig(
        num_query_tokens=4, graph_dim=32, hidden_size=32, num_layers=2, num_heads=4,
        intermediate_size=64, vocab_size=100,
    )  # fmt: skip
    qformer = QFormer(small)
    out = encoder(batch)
    queries = qformer.encode_graph(out.node_embeddings, out.node_mask)
    assert queries.shape == (3, 4, 32)
    queries.square().mean().backward()
    assert encoder.atom_embedding.embedding.weight.grad.abs().sum() > 0
    assert qformer.query_tokens.grad.abs().sum() > 0
    restored = QFormer(small)  # a state dict round trip rebuilds the same module
    restored.load_state_dict(qformer.state_dict())
    with torch.no_grad():
        assert_close(
            restored.eval().encode_graph(out.node_embeddings, out.node_mask),
            qformer.eval().encode_graph(out.node_embeddings, out.node_mask),
        )
