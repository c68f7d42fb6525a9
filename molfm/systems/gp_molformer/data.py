"""SMILES sequence data for causal language models: encode once, batch by padding.

:class:`EncodedSmiles` tokenizes a SMILES list once into a flat int16 array with offsets, so a
1.6M-molecule training set costs a few tens of MB and ``__getitem__`` is a slice. Rows the
tokenizer cannot encode (unknown tokens, characters outside the SMILES grammar) or that are
longer than ``max_length`` are never dropped silently: they are listed in ``rejected`` with
their row number and reason, and ``on_invalid="error"`` raises on the first one.

Two-molecule rows ``<bos> A <eos> B <eos>`` (analog pretraining and pair-tuning) are
:class:`PairDataset` items batched by :func:`collate_pairs`; :func:`pair_positions` gives their
rotary positions (the second molecule restarts at 1).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from molfm.data.samplers import SeededSampler
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = [
    "EncodedSmiles",
    "RejectedRow",
    "SeededSampler",
    "SmilesDataModule",
    "pad_batch",
    "PairBatch",
    "PairDataset",
    "collate_pairs",
    "pair_positions",
]


@dataclass(frozen=True)
class RejectedRow:
    row: int
    smiles: str
    reason: str


class EncodedSmiles(Dataset):
    """Token ids (``<bos> ... <eos>``) of a SMILES list.

    Parameters
    ----------
    smiles
        The SMILES strings; position in this list is the reported row number.
    tokenizer
        Vocabulary to encode with (unknown tokens are rejected rows, never ``<unk>``).
    max_length
        Longest allowed sequence including ``<bos>``/``<eos>``.
    on_invalid
        ``"error"`` raises ``ValueError`` naming the first rejected row; ``"skip"`` keeps the
        rest and records every rejected row in :attr:`rejected`.
    """

    def __init__(
        self,
        smiles: Sequence[str],
        tokenizer: SmilesTokenizer,
        max_length: int,
        on_invalid: str = "error",
    ):
        self.tokenizer = tokenizer
        self.rejected: list[RejectedRow] = []
        pieces, rows = [], []
        for row, text in enumerate(smiles):
            try:
                if not isinstance(text, str) or not text:
                    raise ValueError("empty or missing SMILES")
                ids = tokenizer.encode(text, add_special=True, unknown="error")
                if len(ids) > max_length:
                    raise ValueError(f"{len(ids)} tokens exceed max_length {max_length}")
            except ValueError as err:
                reason = str(err)
                if on_invalid == "error":
                    raise ValueError(f"row {row}: {text!r}: {reason}") from None
                self.rejected.append(RejectedRow(row, str(text), reason))
                continue
            pieces.append(np.asarray(ids, dtype=np.int16))
            rows.append(row)
        if not pieces:
            raise ValueError("no SMILES could be encoded")
        self.rows = np.asarray(rows, dtype=np.int64)
        lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
        self.offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        self.ids = np.concatenate(pieces)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> torch.Tensor:
        a, b = self.offsets[index], self.offsets[index + 1]
        return torch.from_numpy(self.ids[a:b].astype(np.int64))


def pad_batch(sequences: Sequence[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences: returns ``ids [B, T]`` and ``attention_mask [B, T]`` (bool)."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.bool)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = seq
        mask[i, : len(seq)] = True
    return ids, mask


class SmilesDataModule(L.LightningDataModule):
    """Train/val loaders of padded SMILES token batches, resumable mid-epoch.

    The datasets are :class:`EncodedSmiles` by default (batches ``(ids, attention_mask)``);
    any other dataset comes with its own ``collate_fn`` (e.g. analog pairs,
    :mod:`molfm.systems.gp_molformer.analogs`).

    ``seed`` fixes the shuffling order of every epoch; with ``drop_last`` batches, the
    position inside an epoch follows from the trainer's global step (no gradient
    accumulation), which is what makes a resumed run continue exactly.
    """

    def __init__(
        self,
        train: Dataset,
        val: Dataset | None,
        *,
        batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 0,
        collate_fn: Callable[[list[Any]], tuple[torch.Tensor, ...]] | None = None,
    ):
        super().__init__()
        self.train, self.val = train, val
        self.batch_size, self.num_workers = batch_size, num_workers
        self.seed = seed
        if collate_fn is None:  # EncodedSmiles items: pad to (ids, attention_mask)
            collate_fn = functools.partial(pad_batch, pad_id=train.tokenizer.pad_id)
        self._collate = collate_fn

    def train_dataloader(self) -> DataLoader:
        sampler = SeededSampler(len(self.train), self.seed)
        sampler.resume(getattr(self, "trainer", None), self.batch_size)
        return DataLoader(
            self.train,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            collate_fn=self._collate,
            generator=self._generator(),
        )

    def val_dataloader(self) -> DataLoader:
        if self.val is None:
            return []
        return DataLoader(
            self.val,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=self._collate,
            generator=self._generator(),
        )

    def _generator(self) -> torch.Generator:
        # Each DataLoader iterator draws a seed from its generator; with the default (the
        # global RNG) validation and resumption would shift the dropout random stream.
        return torch.Generator().manual_seed(self.seed)


PairBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""``(ids [B, T], attention_mask [B, T], target_mask [B, T])``."""


class PairDataset(Dataset):
    """Encoded pairs: item ``i`` is ``(ids, n_context)`` with ``ids`` =
    ``<bos> source <eos> target <eos>`` (LongTensor ``[L]``) and ``n_context`` the length of
    ``<bos> source <eos>`` (the first target token sits at index ``n_context``).

    Raises
    ------
    ValueError
        Naming the pair and the SMILES when the tokenizer cannot encode it.
    """

    def __init__(
        self, sources: Sequence[str], targets: Sequence[str], tokenizer: SmilesTokenizer
    ) -> None:
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
        if not len(sources):
            raise ValueError("no pairs to train on")
        self.items: list[tuple[torch.Tensor, int]] = []
        for index, (source, target) in enumerate(zip(sources, targets, strict=True)):
            try:
                context = tokenizer.encode(source)
                answer = tokenizer.encode(target, add_special=False) + [tokenizer.eos_id]
            except ValueError as err:
                raise ValueError(f"pair {index} ({source!r} -> {target!r}): {err}") from None
            self.items.append((torch.tensor(context + answer, dtype=torch.long), len(context)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.items[index]


def collate_pairs(batch: Sequence[tuple[torch.Tensor, int]], pad_id: int) -> PairBatch:
    """Right-pad a list of :class:`PairDataset` items.

    Returns
    -------
    ids, attention_mask, target_mask
        ``[B, T]`` each; ``target_mask`` is true on target tokens and the final ``<eos>``.
    """
    ids, mask = pad_batch([item[0] for item in batch], pad_id)
    n_context = torch.tensor([item[1] for item in batch])
    positions = torch.arange(ids.shape[1]).unsqueeze(0)
    return ids, mask, mask & (positions >= n_context.unsqueeze(1))


def pair_positions(mask: torch.Tensor, target_mask: torch.Tensor, *, n_prompt: int) -> torch.Tensor:
    """Rotary positions ``[B, T]`` of a pair sequence.

    The context ``<bos> source <eos>`` follows the prompt (positions ``P, P+1, ...``); the
    target restarts at 1, where the first atom of a molecule sat in pretraining, so the
    generated molecule never runs past the positions the base model was trained on.
    """
    index = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    n_context = (mask.bool() & ~target_mask.bool()).sum(1, keepdim=True)
    return torch.where(index < n_context, n_prompt + index, index - n_context + 1)
