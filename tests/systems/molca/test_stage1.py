"""MolCA stage 1: losses, hard negatives, max-over-queries similarity, overfitting, retrieval
with re-ranking, checkpoint round trip, a pretrained GPS as the graph side."""

import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from molfm.chem.featurize import smiles_to_data
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.hub import from_pretrained, save_pretrained
from molfm.systems.molca.losses import in_batch_accuracy, same_pairs, sample_hard_negatives
from molfm.systems.molca.retrieval import full_similarity, retrieve
from molfm.systems.molca.stage1 import MolCAStage1, Stage1Config
from molfm.systems.molca.task import Stage1Task

DATA = Path(__file__).resolve().parents[2] / "data"
# A tiny GINE and MiniLM's first 2 layers. Their [CLS] is still the same vector for every
# text (cosine > 0.9999; it only separates texts in layers 5-6), so the truncated Q-Former
# embeds texts by mean pooling; the full 6-layer one uses [CLS] (the default).
TINY = dict(graph_overrides=dict(num_layers=2, dim=32), qformer=dict(num_layers=2))


def _pairs(n=6):
    rows = [line.split("\t") for line in (DATA / "pubchem_names_150.tsv").read_text().split("\n")]
    rows = [r for r in rows if len(r) > 7 and r[7] and len(r[7]) <= 40]
    return [(r[4], r[7]) for r in rows[:n]]


def _batch(pairs, pair_structure=None):
    graphs = [smiles_to_data(s) for s, _ in pairs]
    dataset = DenseGraphDataset(graphs, pair_structure=pair_structure)
    graphs = collate_dense([dataset[i] for i in range(len(dataset))])
    return types.SimpleNamespace(
        graphs=graphs, smiles=[s for s, _ in pairs], texts=[t for _, t in pairs]
    )


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny matrices: a second thread only adds contention on a shared 2-core machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pairs():
    return _pairs()


@pytest.fixture(scope="module")
def model():
    return MolCAStage1.build("gine", text_pooling="mean", **TINY).eval()


def test_each_loss_is_finite_and_reaches_both_modules(pairs):
    model = MolCAStage1.build("gine", text_pooling="mean", **TINY).train()
    torch.manual_seed(0)
    out = model.losses(_batch(pairs))
    assert set(out) == {"contrastive", "matching", "captioning", "loss"}
    assert_close(out["loss"], out["contrastive"] + out["matching"] + out["captioning"])
    graph_param = model.graph_encoder.atom_embedding.embedding.weight
    cross = model.qformer.bert.encoder.layer[0].crossattention.attention.query.weight
    text_ffn = model.qformer.bert.encoder.layer[0].intermediate.dense.weight  # text FFN
    heads = {
        "contrastive": model.text_proj.weight,
        "matching": model.matching_head.weight,
        "captioning": model.caption_head["dense"].weight,
    }
    for name in ("contrastive", "matching", "captioning"):
        assert torch.isfinite(out[name]) and out[name] > 0
        grads = torch.autograd.grad(
            out[name], [graph_param, cross, text_ffn, heads[name]], retain_graph=True
        )
        for grad in grads:
            assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_caption_head_is_tied_to_the_word_embeddings(model):
    hidden = torch.randn(2, 3, 384)
    before = model.caption_logits(hidden)
    with torch.no_grad():
        model.qformer.word_embeddings.weight[7] += 1.0
        after = model.caption_logits(hidden)
        model.qformer.word_embeddings.weight[7] -= 1.0
    changed = (after - before).abs().amax(dim=(0, 1)) > 1e-6
    assert changed.nonzero().flatten().tolist() == [7]
    assert before.shape == (2, 3, model.qformer.config.vocab_size)
    assert "caption_head.decoder.weight" not in model.state_dict()  # no copy to drift


def test_hard_negatives_never_pick_a_positive():
    g = torch.Generator().manual_seed(0)
    smiles = ["CCO", "CCO", "CN", "CC", "CCC", "O"]
    texts = ["ethanol", "ethyl alcohol", "methylamine", "ethane", "propane", "ethane"]
    excluded = same_pairs(types.SimpleNamespace(smiles=smiles, texts=texts), 6, "cpu")
    assert excluded[0, 1] and excluded[3, 5] and not excluded[0, 2]
    for _ in range(200):
        sim = torch.randn(6, 6, generator=g) * 3
        sim.diagonal().add_(5.0)  # the positives are the most similar: they must still be skipped
        neg_text, neg_mol = sample_hard_negatives(sim, 0.1, excluded, generator=g)
        rows = torch.arange(6)
        assert (neg_text != rows).all() and (neg_mol != rows).all()
        assert not excluded[rows, neg_text].any() and not excluded[neg_mol, rows].any()
    # hard: the softmax favours the most similar wrong pair
    sim = torch.zeros(4, 4)
    sim[0, 2] = 1.0
    picks = [int(sample_hard_negatives(sim, 0.1, generator=g)[0][0]) for _ in range(50)]
    assert picks.count(2) > 45
    # nothing allowed: -1
    neg_text, neg_mol = sample_hard_negatives(torch.zeros(2, 2), 0.1, torch.ones(2, 2).bool())
    assert neg_text.tolist() == [-1, -1] and neg_mol.tolist() == [-1, -1]


def test_similarity_is_the_max_over_queries(model, pairs):
    batch = _batch(pairs)
    with torch.no_grad():
        mols = model.embed_molecules(batch.graphs)
        texts = model.embed_texts(*model.tokenize(batch.texts))
        sim = model.similarity(mols, texts)
        in_loss = model.losses(batch, return_similarity=True)["similarity"]
    assert mols.shape == (6, model.num_query_tokens, 256) and texts.shape == (6, 256)
    assert_close(mols.norm(dim=-1), torch.ones(6, model.num_query_tokens))
    assert_close(texts.norm(dim=-1), torch.ones(6))
    explicit = torch.empty(6, 6)
    for i in range(6):
        for j in range(6):
            explicit[i, j] = max(float(mols[i, q] @ texts[j]) for q in range(mols.shape[1]))
    assert_close(sim, explicit)
    # the losses take the query outputs from the captioning pass (queries never see the text)
    assert_close(in_loss, sim, atol=1e-5, rtol=1e-4)


def test_overfits_six_molecule_name_pairs(pairs):
    model = MolCAStage1.build("gine", text_pooling="mean", matching=False, captioning=False, **TINY)
    batch = _batch(pairs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
    torch.manual_seed(0)
    first = None
    for _ in range(40):  # 100% after 24 steps here (eval mode: BatchNorm running statistics)
        loss = model.train().losses(batch)["contrastive"]
        first = float(loss.detach()) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.eval()
            sim = model.similarity(
                model.embed_molecules(batch.graphs), model.embed_texts(*model.tokenize(batch.texts))
            )
        if all(float(a) == 1.0 for a in in_batch_accuracy(sim)):
            break
    assert [float(a) for a in in_batch_accuracy(sim)] == [1.0, 1.0]
    assert float(loss) < 0.8 * first


def test_retrieve_reranks_by_cosine_plus_matching_log_odds(model, pairs):
    smiles, names = [s for s, _ in pairs], [t for _, t in pairs]
    plain = retrieve(model, names[:2], smiles, "text-to-molecule", top_k=6, rerank=0)
    assert plain["match"].isna().all()
    assert np.array_equal(plain["score"], plain["cosine"])
    hits = retrieve(model, names[:2], smiles, "text-to-molecule", top_k=3, rerank=5)
    assert list(hits.columns) == ["query", "rank", "candidate", "cosine", "match", "score"]
    assert hits["query"].tolist() == [0, 0, 0, 1, 1, 1] and hits["rank"].tolist() == [1, 2, 3] * 2
    for q, group in hits.groupby("query"):
        assert (np.diff(group["score"]) <= 0).all()  # sorted by the score
        # candidates come from the cosine's top 5; the cosine itself is unchanged
        top5 = plain[(plain["query"] == q) & (plain["rank"] <= 5)]
        cos = dict(zip(top5["candidate"], top5["cosine"], strict=True))
        assert set(group["candidate"]) <= set(cos)
        expected = [cos[c] for c in group["candidate"]]
        np.testing.assert_allclose(group["cosine"].to_numpy(), expected, rtol=1e-6)
    # match = logit(match) - logit(no match) of the matching head on that pair
    graphs = _batch([pairs[c] for c in hits["candidate"]]).graphs
    queries = [names[q] for q in hits["query"]]
    with torch.no_grad():
        direct = model.match_logits(graphs, queries)
    np.testing.assert_allclose(hits["match"].to_numpy(), direct.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(hits["score"], hits["cosine"] + hits["match"], rtol=1e-6)
    # molecule -> text
    back = retrieve(model, smiles[:1], names, "molecule-to-text", top_k=2, rerank=4)
    assert back["query"].tolist() == [0, 0] and (np.diff(back["score"]) <= 0).all()
    with pytest.raises(ValueError, match="direction"):
        retrieve(model, names, smiles, "sideways")


def test_full_similarity(model, pairs):
    smiles, names = [s for s, _ in pairs], [t for _, t in pairs]
    sim = full_similarity(model, smiles, names, batch_size=4)
    with torch.no_grad():
        batch = _batch(pairs)
        direct = model.similarity(
            model.embed_molecules(batch.graphs), model.embed_texts(*model.tokenize(names))
        )
    assert_close(sim, direct, atol=1e-5, rtol=1e-4)
    reranked = full_similarity(model, smiles, names, rerank=2, direction="text-to-molecule")
    for j in range(6):  # each text's (column's) best 2 molecules re-scored, the rest below
        top = sim[:, j].topk(2).indices
        rest = torch.ones(6, dtype=torch.bool)
        rest[top] = False
        assert_close(reranked[rest, j], sim[rest, j] - 1e4)
        assert reranked[top, j].min() > reranked[rest, j].max()


def test_save_and_load_give_identical_embeddings(model, pairs, tmp_path):
    save_pretrained(model, tmp_path / "stage1")
    loaded = from_pretrained(tmp_path / "stage1")
    assert isinstance(loaded, MolCAStage1) and loaded.config == model.config
    batch = _batch(pairs)
    ids, mask = model.tokenize(batch.texts)
    with torch.no_grad():
        assert torch.equal(
            loaded.embed_molecules(batch.graphs), model.embed_molecules(batch.graphs)
        )
        assert torch.equal(loaded.embed_texts(ids, mask), model.embed_texts(ids, mask))
        assert torch.equal(
            loaded.match_logits(batch.graphs, batch.texts),
            model.match_logits(batch.graphs, batch.texts),
        )


def test_pretrained_gps_plugs_in(pairs):
    model = MolCAStage1.build(
        "gps-3dpgt-small-qm9", text_pooling="mean", qformer=dict(num_layers=2)
    )
    assert model.config.graph_encoder_type == "gps"
    assert model.config.graph_encoder_source == "gps-3dpgt-small-qm9"
    assert model.qformer.config.graph_dim == model.graph_encoder.embedding_dim == 128
    cross = model.qformer.bert.encoder.layer[0].crossattention.attention.key
    assert cross.in_features == 128
    out = model.train().losses(_batch(pairs, model.pair_structure))
    assert all(torch.isfinite(v) for v in out.values())
    # the default GINE is 300 wide; the Q-Former follows it, and a mismatch is refused
    default = MolCAStage1(Stage1Config(qformer={"num_layers": 2}))
    assert default.qformer.config.graph_dim == 300
    assert default.config.qformer["graph_dim"] == 300
    with pytest.raises(ValueError, match="graph_dim"):
        MolCAStage1(Stage1Config(qformer={"num_layers": 2, "graph_dim": 128}))


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_task_steps_and_frozen_encoder(pairs):
    model = MolCAStage1.build("gine", text_pooling="mean", tune_graph_encoder=False, **TINY)
    task = Stage1Task(model, lr=1e-3, warmup_steps=1, max_steps=3)
    assert task.hparams["model_config"]["graph_encoder_type"] == "gine"
    optimizer = task.configure_optimizers()["optimizer"]
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in trained for p in model.graph_encoder.parameters())
    task.train()
    assert not model.graph_encoder.training and model.qformer.training
    batch = _batch(pairs)
    torch.manual_seed(0)
    loss = task.training_step(batch, 0)
    loss.backward()
    assert model.graph_encoder.atom_embedding.embedding.weight.grad is None
    task.eval()
    with torch.no_grad():
        task.validation_step(batch, 0)
    rebuilt = Stage1Task(model_config=task.hparams["model_config"])  # load_from_checkpoint path
    assert rebuilt.model.config == model.config


def test_reranked_retrieval_ranks_each_direction_in_its_own_reranked_matrix(model, pairs):
    from molfm.eval.text import retrieval_metrics
    from molfm.systems.molca.evaluate import reranked_retrieval

    smiles, names = [s for s, _ in pairs], [t for _, t in pairs]
    report = reranked_retrieval(model, smiles, names, rerank=3, batch_size=4)
    m2t = retrieval_metrics(full_similarity(model, smiles, names, rerank=3))
    t2m = retrieval_metrics(
        full_similarity(model, smiles, names, rerank=3, direction="text-to-molecule")
    )
    for part in ("batch", "full"):
        for key, value in report[part].items():
            want = (m2t if key.startswith("mol2text") else t2m)[part][key]
            assert value == want, (part, key)


def test_match_indexed_equals_matching_each_pair(model, pairs):
    from molfm.systems.molca.retrieval import featurize_molecules, match_indexed, match_pairs

    graphs = featurize_molecules([s for s, _ in pairs])
    names = [t for _, t in pairs]
    g_idx = torch.tensor([0, 3, 3, 5, 1, 0, 2])  # repeats, in any order, not every molecule
    t_idx = torch.tensor([2, 2, 4, 0, 1, 5, 5])
    indexed = match_indexed(model, graphs, names, g_idx, t_idx, batch_size=3)
    direct = match_pairs(model, [graphs[i] for i in g_idx], [names[i] for i in t_idx], 3)
    assert_close(indexed, direct, atol=1e-5, rtol=1e-4)


def test_frozen_word_embeddings_are_minilms_and_not_stored(pairs, tmp_path):
    model = MolCAStage1.build(
        "gine", text_pooling="mean", tune_word_embeddings=False, captioning=False, **TINY
    )
    words, positions = model.qformer.word_embeddings.weight, model.qformer.position_embeddings
    assert not words.requires_grad and not positions.weight.requires_grad
    torch.manual_seed(0)
    model.train().losses(_batch(pairs))["loss"].backward()
    assert words.grad is None and model.text_proj.weight.grad is not None
    stored = model.checkpoint_state_dict()
    assert not any(k.startswith("qformer.word_embeddings") for k in stored)
    assert not any(k.startswith("qformer.position_embeddings") for k in stored)
    with torch.no_grad():  # trained weights must survive the reload, frozen ones come back
        model.text_proj.weight.add_(0.5)
    save_pretrained(model.eval(), tmp_path / "frozen")
    loaded = from_pretrained(tmp_path / "frozen")
    assert torch.equal(loaded.qformer.word_embeddings.weight, words)
    assert torch.equal(loaded.text_proj.weight, model.text_proj.weight)
    ids, mask = model.tokenize([t for _, t in pairs])
    with torch.no_grad():
        assert torch.equal(loaded.embed_texts(ids, mask), model.embed_texts(ids, mask))
