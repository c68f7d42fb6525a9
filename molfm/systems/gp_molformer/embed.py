"""GP-MoLFormer as a SMILES encoder: the mean of its last hidden states (after the final
LayerNorm) over a molecule's tokens, ``<bos>`` and ``<eos>`` included, as MoLFormer pools."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from molfm.systems.gp_molformer.model import GPMoLFormer
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = ["embed_smiles"]


@torch.no_grad()
def embed_smiles(
    model: GPMoLFormer,
    tokenizer: SmilesTokenizer,
    smiles: Sequence[str],
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """``[N, n_embd]`` float32 embeddings of SMILES the tokenizer can encode (the caller
    checks them: :meth:`SmilesTokenizer.encode` raises naming the unknown tokens). Each
    molecule is encoded alone in its batch's padded rows: padding does not reach real tokens
    (causal attention), so a molecule's vector does not depend on its batch."""
    out = np.zeros((len(smiles), model.config.n_embd), dtype=np.float32)
    for start in range(0, len(smiles), batch_size):
        chunk = list(smiles[start : start + batch_size])
        ids, lengths = tokenizer.encode_batch(chunk, max_length=model.config.max_length)
        mask = torch.arange(ids.shape[1]) < lengths[:, None]
        ids, mask = ids.to(device), mask.to(device)
        hidden = model.hidden_states(ids, mask)  # [B, T, C]
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        pooled = (hidden * weights).sum(1) / weights.sum(1)
        out[start : start + len(chunk)] = pooled.float().cpu().numpy()
    return out
