"""The Q-Former's keys: the pooled graph token MolCA's encoder prepends, and a pretrained molfm
encoder (3D-PGT's GPS) as the graph side with its weights."""

from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from molfm.chem.featurize import smiles_to_data
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.hub import from_pretrained, load_config, resolve_checkpoint
from molfm.systems.molca.config import MolCATrainConfig
from molfm.systems.molca.graph import build_graph_encoder, graph_keys
from molfm.systems.molca.qformer import QFormerConfig
from molfm.systems.molca.stage1 import MolCAStage1

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"]


def _graphs():
    dataset = DenseGraphDataset([smiles_to_data(s) for s in SMILES])
    return collate_dense([dataset[i] for i in range(len(dataset))])


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_graph_keys_prepend_the_pooled_embedding(one_thread):
    torch.manual_seed(0)
    encoder = build_graph_encoder("gine", overrides=dict(num_layers=2, dim=32)).eval()
    encoded = encoder(_graphs())
    nodes, mask = graph_keys(encoded, graph_token=False)
    assert nodes is encoded.node_embeddings and mask is encoded.node_mask
    nodes, mask = graph_keys(encoded, graph_token=True)
    assert nodes.shape == (3, encoded.node_embeddings.shape[1] + 1, 32)
    assert mask[:, 0].all() and torch.equal(mask[:, 1:], encoded.node_mask)
    assert_close(nodes[:, 0], encoded.graph_embedding)
    # the official token is the mean over the molecule's atoms (GINE pools by mean)
    for b, smiles in enumerate(SMILES):
        n = smiles_to_data(smiles).num_nodes
        assert_close(nodes[b, 0], encoded.node_embeddings[b, :n].mean(0))


def test_the_queries_read_the_graph_token_only_when_asked(one_thread):
    base = dict(graph_overrides=dict(num_layers=2, dim=32), text_pooling="mean", minilm=False)
    with_token = MolCAStage1.build("gine", qformer=dict(num_layers=2, graph_token=True), **base)
    without = MolCAStage1.build("gine", qformer=dict(num_layers=2), **base)
    without.load_state_dict(with_token.state_dict())  # same weights, only the keys differ
    assert with_token.qformer.config.graph_token and not without.qformer.config.graph_token
    graphs = _graphs()
    nodes, mask = with_token.eval().encode_nodes(graphs)
    plain, plain_mask = without.eval().encode_nodes(graphs)
    assert nodes.shape[1] == plain.shape[1] + 1 and torch.equal(mask[:, 1:], plain_mask)
    assert not torch.allclose(with_token.embed_molecules(graphs), without.embed_molecules(graphs))


def test_new_runs_use_the_token_and_old_checkpoints_keep_their_keys():
    assert QFormerConfig().graph_token is False  # a saved config without the field
    shipped = load_config(resolve_checkpoint("molca-small-pubchem-names"))["model_config"]
    assert "graph_token" not in shipped["qformer"]  # so it loads as before: nodes alone
    run = MolCATrainConfig(stage="1", data="pubchem-names", output_dir="runs/x")
    assert run.qformer["graph_token"] is True
    off = MolCATrainConfig(stage="1", data="pubchem-names", output_dir="runs/x", graph_token=False)
    assert off.qformer["graph_token"] is False


def test_a_pretrained_encoder_is_copied_into_the_graph_side(one_thread):
    """3D-PGT's shipped GPS through the hub: MolCA's graph encoder holds its weights exactly
    (the systems never import each other; the checkpoint and molfm.nn carry it)."""
    pretrained = from_pretrained(resolve_checkpoint("gps-3dpgt-small-qm9"))
    model = MolCAStage1.build(
        "gps-3dpgt-small-qm9", text_pooling="mean", qformer=dict(num_layers=2, graph_token=True)
    )
    # it trains like a fresh encoder (BatchNorm statistics move), not in from_pretrained's eval mode
    assert all(m.training for m in model.graph_encoder.modules())
    source, copied = pretrained.state_dict(), model.graph_encoder.state_dict()
    assert source.keys() == copied.keys()
    for key, value in source.items():
        assert torch.equal(copied[key], value), key
    graphs = _graphs()
    assert_close(
        model.eval().graph_encoder(graphs).graph_embedding,
        pretrained.eval()(graphs).graph_embedding,
    )
    assert Path(resolve_checkpoint("gps-3dpgt-small-qm9")).is_dir()
