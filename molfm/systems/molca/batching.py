"""Training batches for MolCA's LM stages: pairs tokenized once, padded in the loader, grouped
by length.

* :func:`tokenize_pairs` tokenizes every (prompt, target) pair of a data set once, at the start
  of a run (batched fast-tokenizer calls), instead of in the main process at every step.
* :class:`PromptCollate` pads a batch of them into a :class:`~.prompt.PromptBatch` (in the
  loader's workers when there are any); :meth:`~.model.MolCA.loss` uses it as it is.
* :class:`LengthGroupedSampler` orders an epoch so that each batch holds pairs of similar
  length: a seeded shuffle, cut into pools of ``pool`` batches, each pool sorted by length and
  cut into batches, and the batches shuffled. Random batches of PubChem names are about two
  thirds padding; grouped ones are nearly free of it. The order depends only on the seed and
  the epoch, so a resumed run continues exactly (:class:`~molfm.data.samplers.SeededSampler`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from molfm.data.dense import collate_dense
from molfm.data.samplers import SeededSampler
from molfm.systems.molca.data import MolTextBatch, MolTextDataset
from molfm.systems.molca.prompt import PromptRow, encode_prompt_rows, pad_prompt_rows

__all__ = ["TokenizedPairs", "tokenize_pairs", "PromptCollate", "LengthGroupedSampler"]


class TokenizedPairs(Dataset):
    """A :class:`~.data.MolTextDataset` with each pair's prompt already tokenized.

    Items are ``(graph, smiles, text, row)``; :attr:`lengths` holds each row's token count.
    """

    def __init__(self, pairs: MolTextDataset, rows: Sequence[PromptRow]) -> None:
        if len(rows) != len(pairs):
            raise ValueError(f"{len(rows)} tokenized rows for {len(pairs)} pairs")
        self.pairs, self.rows = pairs, list(rows)
        self.lengths = np.array([len(row.ids) for row in self.rows], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[Any, str, str, PromptRow]:
        graph, smiles, text = self.pairs[index]
        return graph, smiles, text, self.rows[index]


def tokenize_pairs(model, pairs: MolTextDataset, task: str) -> TokenizedPairs:
    """Every pair's prompt as ``model`` builds it (:meth:`~.model.MolCA.prompts`: the input
    mode, template, caps), tokenized once."""
    config = model.config
    shown = [""] * len(pairs) if config.input_mode == "2d" else list(pairs.smiles)
    rows = encode_prompt_rows(
        model.tokenizer,
        shown,
        config.instruction(task),
        model.num_graph_tokens,
        list(pairs.texts),
        template=config.template,
        max_smiles_chars=config.max_smiles_chars,
        max_target_tokens=config.max_target_tokens,
    )
    return TokenizedPairs(pairs, rows)


class PromptCollate:
    """A loader's ``collate_fn`` for :class:`TokenizedPairs`: a :class:`~.data.MolTextBatch`
    whose ``prompt`` is padded on the right (picklable, for worker processes)."""

    def __init__(self, pad_token_id: int, num_query_tokens: int) -> None:
        self.pad, self.num_query_tokens = pad_token_id, num_query_tokens

    def __call__(self, items: Sequence[tuple[Any, str, str, PromptRow]]) -> MolTextBatch:
        if not items:
            raise ValueError("cannot collate an empty batch")
        graphs = collate_dense([(graph, None) for graph, _, _, _ in items])
        prompt = pad_prompt_rows([row for *_, row in items], self.pad, self.num_query_tokens)
        return MolTextBatch(
            graphs, [s for _, s, _, _ in items], [t for _, _, t, _ in items], prompt=prompt
        )


class LengthGroupedSampler(SeededSampler):
    """A :class:`~molfm.data.samplers.SeededSampler` whose epoch order puts pairs of similar
    length in the same batch (see the module docstring).

    Parameters
    ----------
    lengths
        One length per item (tokens).
    batch_size
        The loader's batch size: batches are consecutive runs of this many items.
    seed
        The epoch's order depends on ``seed + epoch`` only.
    pool
        Batches per pool sorted together: larger pools pad less but mix lengths less
        across batches (the batches are shuffled after grouping either way).
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, seed: int = 0, pool: int = 50
    ) -> None:
        super().__init__(len(lengths), seed)
        if batch_size < 1 or pool < 1:
            raise ValueError(f"batch_size ({batch_size}) and pool ({pool}) must be >= 1")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.group_size, self.pool = batch_size, pool

    def order(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed + self.epoch)
        shuffled = rng.permutation(self.n)
        b, size = self.group_size, self.group_size * self.pool
        batches = []
        for start in range(0, self.n, size):
            chunk = shuffled[start : start + size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + b] for i in range(0, len(chunk), b)]
        full = [batch for batch in batches if len(batch) == b]
        rest = [batch for batch in batches if len(batch) < b]  # at most one: dropped last
        full = [full[i] for i in rng.permutation(len(full))]
        return np.concatenate(full + rest) if batches else shuffled
