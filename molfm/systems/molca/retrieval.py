"""Molecule-text retrieval with a MolCA stage-1 model: contrastive top-k, then re-ranking.

1. Every candidate is encoded once, in batches: a molecule into ``Nq`` normalized query
   embeddings, a text into one normalized [CLS] embedding.
2. Each query's candidates are ordered by the contrastive similarity, the best query's cosine
   (``cosine`` in ``[-1, 1]``).
3. The best ``max(rerank, top_k)`` of them go through the matching head (the joint
   queries + text pass) and are re-ordered by ``score = cosine + match``, where ``match`` is
   the matching head's log-odds ``logit(match) - logit(no match)`` (``log p / (1 - p)``).
   The log-odds rather than MolCA code's raw positive logit (which a two-class softmax does
   not pin down: adding a constant to both logits changes it, not the prediction) and
   rather than ``log p`` (which saturates at 0 for every confident match and so cannot
   order them). ``rerank=0`` skips this step (``match`` NaN, ``score = cosine``).

:func:`retrieve` returns the hits as a table; :func:`full_similarity` gives the whole
molecule x text score matrix for evaluation (accuracy, recall@20 by any metric function).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from molfm.chem.featurize import smiles_to_data
from molfm.data.dense import DenseGraphDataset, collate_dense

__all__ = [
    "DIRECTIONS",
    "featurize_molecules",
    "encode_molecules",
    "encode_texts",
    "match_pairs",
    "match_indexed",
    "retrieve",
    "full_similarity",
]

Direction = Literal["text-to-molecule", "molecule-to-text"]
DIRECTIONS = ("text-to-molecule", "molecule-to-text")
OUTSIDE = 1e4  # full_similarity: entries outside the re-rank window sit this far below


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")


def featurize_molecules(molecules: Sequence[str | Data]) -> list[Data]:
    """SMILES (or already featurized graphs) -> graphs; a bad SMILES raises naming its row."""
    return [m if isinstance(m, Data) else smiles_to_data(m, row=i) for i, m in enumerate(molecules)]


def _collate(model, graphs: Sequence[Data]):
    dataset = DenseGraphDataset(list(graphs), pair_structure=model.pair_structure)
    return collate_dense([dataset[i] for i in range(len(dataset))])


@torch.no_grad()
def encode_molecules(model, graphs: Sequence[Data], batch_size: int = 64) -> torch.Tensor:
    """``[N, Nq, D]`` normalized query embeddings (model in eval mode), on the CPU."""
    model.eval()
    out = [
        model.embed_molecules(_collate(model, graphs[i : i + batch_size])).cpu()
        for i in range(0, len(graphs), batch_size)
    ]
    dim = model.config.embed_dim
    return torch.cat(out) if out else torch.zeros(0, model.num_query_tokens, dim)


@torch.no_grad()
def encode_texts(model, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """``[N, D]`` normalized text embeddings (model in eval mode), on the CPU.

    Batches group texts of similar token length (less padding), in the input order on return.
    """
    model.eval()
    if not len(texts):
        return torch.zeros(0, model.config.embed_dim)
    texts = list(texts)
    ids = model.tokenizer(texts, truncation=True, max_length=model.config.max_text_length)
    order = np.argsort([len(x) for x in ids["input_ids"]], kind="stable")
    out = torch.cat(
        [
            model.embed_texts(*model.tokenize([texts[j] for j in order[i : i + batch_size]])).cpu()
            for i in range(0, len(texts), batch_size)
        ]
    )
    return out[torch.from_numpy(np.argsort(order))]


@torch.no_grad()
def match_pairs(
    model, graphs: Sequence[Data], texts: Sequence[str], batch_size: int = 64
) -> torch.Tensor:
    """``[P]`` matching log-odds of the aligned pairs ``(graphs[p], texts[p])``, in batches."""
    model.eval()
    out = []
    for i in range(0, len(graphs), batch_size):
        nodes, mask = model.encode_nodes(_collate(model, graphs[i : i + batch_size]))
        ids, text_mask = model.tokenize(list(texts[i : i + batch_size]))
        out.append(model.match_scores(nodes, mask, ids, text_mask).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def _rerank_window(
    model,
    cosine: torch.Tensor,
    query_items: Sequence,
    cand_items: Sequence,
    direction: str,
    window: int,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each query (row of ``cosine``), its best ``window`` candidates by cosine, their
    cosines and their matching log-odds: three ``[Q, window]`` tensors."""
    top_cos, top_idx = cosine.topk(window, dim=1)
    q_idx = torch.arange(cosine.shape[0]).repeat_interleave(window)
    c_idx = top_idx.reshape(-1)
    if direction == "text-to-molecule":
        graphs, g_idx, texts, t_idx = cand_items, c_idx, query_items, q_idx
    else:
        graphs, g_idx, texts, t_idx = query_items, q_idx, cand_items, c_idx
    match = match_indexed(model, graphs, texts, g_idx, t_idx, batch_size)
    return top_idx, top_cos, match.reshape(-1, window)


@torch.no_grad()
def match_indexed(
    model,
    graphs: Sequence[Data],
    texts: Sequence[str],
    graph_index: torch.Tensor,
    text_index: torch.Tensor,
    batch_size: int = 64,
) -> torch.Tensor:
    """``[P]`` matching log-odds of the pairs ``(graphs[graph_index[p]], texts[text_index[p]])``.

    The same as :func:`match_pairs` on the listed pairs, but each molecule that appears is
    encoded once and each text tokenized once (re-ranking pairs every query with up to 128
    candidates, so pairs repeat molecules and texts many times over)."""
    model.eval()
    used_g, g_pos = torch.unique(graph_index, return_inverse=True)
    used_t, t_pos = torch.unique(text_index, return_inverse=True)
    nodes, masks = [], []
    for i in range(0, len(used_g), batch_size):
        batch = [graphs[int(j)] for j in used_g[i : i + batch_size]]
        n, m = model.encode_nodes(_collate(model, batch))
        nodes += list(n)
        masks += list(m)
    width = max((int(m.shape[0]) for m in masks), default=0)
    nodes = torch.stack([F.pad(n, (0, 0, 0, width - n.shape[0])) for n in nodes]) if nodes else None
    masks = torch.stack([F.pad(m, (0, width - m.shape[0])) for m in masks]) if masks else None
    ids, text_mask = (
        model.tokenize([texts[int(j)] for j in used_t]) if len(used_t) else (None, None)
    )
    out = []
    for i in range(0, len(graph_index), batch_size):
        g = g_pos[i : i + batch_size].to(nodes.device)
        t = t_pos[i : i + batch_size].to(ids.device)
        node_mask, token_mask = masks[g], text_mask[t]
        n_nodes = int(node_mask.sum(1).max())  # trim to the batch's largest molecule and text
        n_tokens = int(token_mask.sum(1).max())
        out.append(
            model.match_scores(
                nodes[g, :n_nodes],
                node_mask[:, :n_nodes],
                ids[t, :n_tokens],
                token_mask[:, :n_tokens],
            )
            .float()
            .cpu()
        )
    return torch.cat(out) if out else torch.zeros(0)


def _cosine(model, queries, candidates, direction, batch_size) -> tuple:
    """Featurized queries/candidates and the ``[Q, C]`` contrastive similarity."""
    if direction == "text-to-molecule":
        graphs = featurize_molecules(candidates)
        mols = encode_molecules(model, graphs, batch_size)
        sim = model.similarity(mols, encode_texts(model, queries, batch_size)).t()
        return list(queries), graphs, sim
    graphs = featurize_molecules(queries)
    texts = encode_texts(model, candidates, batch_size)
    sim = model.similarity(encode_molecules(model, graphs, batch_size), texts)
    return graphs, list(candidates), sim


def retrieve(
    model,
    queries: Sequence[str],
    candidates: Sequence[str | Data],
    direction: Direction,
    top_k: int = 10,
    rerank: int = 128,
    batch_size: int = 64,
) -> pd.DataFrame:
    """The ``top_k`` candidates of each query.

    Parameters
    ----------
    model
        A :class:`~molfm.systems.molca.stage1.MolCAStage1` (put in eval mode here).
    queries, candidates
        ``"text-to-molecule"``: texts, and SMILES (or featurized graphs);
        ``"molecule-to-text"``: SMILES (or graphs), and texts.
    rerank
        Re-rank each query's best ``max(rerank, top_k)`` candidates by
        ``cosine + match`` (see the module docstring); 0: contrastive only.

    Returns
    -------
    pandas.DataFrame
        One row per hit, sorted by query then rank: ``query`` (index into ``queries``),
        ``rank`` (1 = best), ``candidate`` (index into ``candidates``), ``cosine``, ``match``
        (NaN without re-ranking) and ``score`` (the ranking key).
    """
    _check_direction(direction)
    if top_k < 1 or rerank < 0:
        raise ValueError(f"top_k must be >= 1 and rerank >= 0, got {top_k}, {rerank}")
    columns = ["query", "rank", "candidate", "cosine", "match", "score"]
    if not len(queries) or not len(candidates):
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    query_items, cand_items, cosine = _cosine(model, queries, candidates, direction, batch_size)
    n_cand = cosine.shape[1]
    if rerank:
        window = min(n_cand, max(rerank, top_k))
        idx, cos, match = _rerank_window(
            model, cosine, query_items, cand_items, direction, window, batch_size
        )
        score = cos + match
        order = score.argsort(dim=1, descending=True, stable=True)
        idx, cos, match, score = (t.gather(1, order) for t in (idx, cos, match, score))
    else:
        cos, idx = cosine.topk(min(n_cand, top_k), dim=1)
        match, score = torch.full_like(cos, float("nan")), cos
    k = min(n_cand, top_k)
    q = cosine.shape[0]
    return pd.DataFrame(
        {
            "query": np.repeat(np.arange(q), k),
            "rank": np.tile(np.arange(1, k + 1), q),
            "candidate": idx[:, :k].reshape(-1).numpy(),
            "cosine": cos[:, :k].reshape(-1).numpy(),
            "match": match[:, :k].reshape(-1).numpy(),
            "score": score[:, :k].reshape(-1).numpy(),
        },
        columns=columns,
    )


def full_similarity(
    model,
    smiles: Sequence[str | Data],
    texts: Sequence[str],
    *,
    rerank: int = 0,
    direction: Direction = "molecule-to-text",
    batch_size: int = 64,
) -> torch.Tensor:
    """The ``[N_mol, N_text]`` score matrix of every molecule against every text.

    ``rerank=0``: the contrastive similarity (the best query's cosine). ``rerank > 0``:
    within each query's best ``rerank`` candidates (rows for ``"molecule-to-text"``, columns
    for ``"text-to-molecule"``) the score is ``cosine + match``; every other entry keeps its
    cosine shifted 1e4 below, so it ranks after the re-ranked ones in the same order as
    before. Rank each row (molecule -> text) or column (text -> molecule) of the result.
    """
    _check_direction(direction)
    if direction == "text-to-molecule":
        items, cands, cosine = _cosine(model, texts, smiles, direction, batch_size)
    else:
        items, cands, cosine = _cosine(model, smiles, texts, direction, batch_size)
    if rerank:
        window = min(cosine.shape[1], rerank)
        idx, cos, match = _rerank_window(model, cosine, items, cands, direction, window, batch_size)
        scores = cosine - OUTSIDE
        scores.scatter_(1, idx, cos + match)
        cosine = scores
    return cosine.t() if direction == "text-to-molecule" else cosine
