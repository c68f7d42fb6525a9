"""MolCA stage 1's loss parts: the max-over-queries similarity, the in-batch accuracy and the
hard negatives of the matching loss (:meth:`~.stage1.MolCAStage1.losses` sums the losses).

* ``s(m, t) = max_q cos(graph_proj(query_q(m)), text_proj(cls(t)))``
  (:func:`max_query_similarity`): the contrastive loss is a symmetric InfoNCE over it;
* the matching loss takes for each molecule one negative text and for each text one negative
  molecule, drawn from ``softmax(s / T) + 1e-4`` over the batch without the positive
  (:func:`sample_hard_negatives`), nor any pair with the same SMILES or the same text
  (:func:`same_pairs`), which would be a positive too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["max_query_similarity", "in_batch_accuracy", "sample_hard_negatives", "same_pairs"]


def max_query_similarity(mol_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """``[Nm, Nq, D]`` x ``[Nt, D]`` (both normalized) -> ``[Nm, Nt]``: the best query's cosine."""
    return torch.einsum("mqd,td->mtq", mol_emb, text_emb).amax(-1)


def in_batch_accuracy(similarity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 retrieval accuracy of a square ``[B, B]`` molecule x text similarity whose
    diagonal holds the true pairs: (molecule -> text, text -> molecule)."""
    target = torch.arange(similarity.shape[0], device=similarity.device)
    g2t = (similarity.argmax(1) == target).float().mean()
    t2g = (similarity.argmax(0) == target).float().mean()
    return g2t, t2g


@torch.no_grad()
def sample_hard_negatives(
    similarity: torch.Tensor,
    temperature: float,
    excluded: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One negative text per molecule and one negative molecule per text, drawn from the
    similarity softmax (+1e-4, as MolCA, so every allowed pair keeps a chance).

    Parameters
    ----------
    similarity
        ``[B, B]`` molecule x text (diagonal: the true pairs).
    excluded
        bool ``[B, B]``, pairs that are positives too (same SMILES or same text); the
        diagonal is always excluded.

    Returns
    -------
    tuple of torch.Tensor
        ``neg_text [B]`` (for molecule ``i``) and ``neg_mol [B]`` (for text ``j``), -1 where
        no allowed candidate exists.
    """
    b = similarity.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=similarity.device)
    excluded = eye if excluded is None else excluded | eye

    def draw(sim: torch.Tensor, banned: torch.Tensor) -> torch.Tensor:
        weights = (F.softmax(sim.float() / temperature, dim=1) + 1e-4).masked_fill(banned, 0.0)
        out = torch.full((b,), -1, dtype=torch.long, device=sim.device)
        ok = weights.sum(1) > 0
        if ok.any():
            cpu = weights[ok].cpu()  # a CPU generator draws the same on every device
            out[ok] = torch.multinomial(cpu, 1, generator=generator).squeeze(1).to(sim.device)
        return out

    return draw(similarity, excluded), draw(similarity.t(), excluded.t())


def same_pairs(batch, b: int, device: torch.device) -> torch.Tensor:
    """``[B, B]`` true where two pairs share the SMILES or the text (both are positives)."""
    excluded = torch.zeros(b, b, dtype=torch.bool)
    for column in (getattr(batch, "smiles", None), batch.texts):
        if column is None:
            continue
        codes = {value: i for i, value in enumerate(column)}
        ids = torch.tensor([codes[value] for value in column])
        excluded |= ids[:, None] == ids[None, :]
    return excluded.to(device)
