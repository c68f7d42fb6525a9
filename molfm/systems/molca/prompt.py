"""MolCA's LM input: a text prompt with the molecule's SMILES, ``Nq`` graph embeddings (the
projected Q-Former outputs) right after it as soft tokens, the task instruction, then the
target text; the loss is on the target tokens only.

One example, with ``template = "Molecule: {smiles}{graph}\\n{instruction}\\n"``::

    tokens   Molecule: CC(=O)O  [g1 .. gNq]  \\n Describe it. \\n  The molecule is ... <eos>
    labels   -100 ...      -100  -100 ...     -100 ...       -100  The molecule is ... <eos>

The pieces before and after ``{graph}`` are tokenized separately and the graph slots hold the
pad id until :func:`assemble_inputs` replaces their embeddings, so the tokenizer needs no new
token. SMILES are cut to 128 characters (as in MolCA). Rows are padded on the right for
training and on the left for generation; ``position_ids`` count real tokens only, so a row
computes the same thing wherever its padding is.

Tokenizing (:func:`encode_prompt_rows`) and padding (:func:`pad_prompt_rows`) are separate, so
a training run tokenizes each pair once and pads batches in the loader's workers. Every index
the model needs (the graph slots, the positions that predict a target token) is computed here,
on the CPU, so the model's step never waits on the accelerator to find them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal, NamedTuple

import torch
from torch import nn

__all__ = [
    "DEFAULT_TEMPLATE",
    "IGNORE_INDEX",
    "SMILES_MAX_CHARS",
    "PromptBatch",
    "PromptRow",
    "split_template",
    "encode_prompt_rows",
    "pad_prompt_rows",
    "build_prompts",
    "assemble_inputs",
    "causal_padding_mask",
]

DEFAULT_TEMPLATE = "Molecule: {smiles}{graph}\n{instruction}\n"
IGNORE_INDEX = -100  # the label value that transformers' causal-LM loss skips
SMILES_MAX_CHARS = 128
_FIELD = re.compile(r"\{(smiles|instruction)\}")


@dataclass
class PromptBatch:
    """A padded batch of ``B`` prompts of length ``L`` (before embedding).

    Attributes
    ----------
    input_ids : torch.Tensor
        long ``[B, L]``; padding and graph slots hold the pad id.
    attention_mask : torch.Tensor
        long ``[B, L]``, 1 on real tokens and graph slots.
    labels : torch.Tensor
        long ``[B, L]``: the target token ids, :data:`IGNORE_INDEX` everywhere else.
    graph_mask : torch.Tensor
        bool ``[B, L]``, true at the ``Nq`` graph slots of each row.
    position_ids : torch.Tensor
        long ``[B, L]``: 0, 1, ... over the real tokens of each row (0 on padding).
    graph_index : torch.Tensor
        long ``[B, Nq]``: the positions of each row's graph slots.
    loss_index : torch.Tensor
        long ``[T]``: flat positions (``row * L + column``) whose next token is a target
        token, in row-major order.
    loss_targets : torch.Tensor
        long ``[T]``: that next token.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    graph_mask: torch.Tensor
    position_ids: torch.Tensor
    graph_index: torch.Tensor
    loss_index: torch.Tensor
    loss_targets: torch.Tensor

    def to(self, device: str | torch.device) -> PromptBatch:
        return PromptBatch(
            *(getattr(self, f.name).to(device, non_blocking=True) for f in fields(self))
        )

    def __len__(self) -> int:
        return self.input_ids.shape[0]


class PromptRow(NamedTuple):
    """One tokenized prompt: ``ids`` (graph slots hold the pad id), ``labels`` and the index
    of the first graph slot."""

    ids: list[int]
    labels: list[int]
    graph_start: int


def split_template(
    template: str, smiles: str, instruction: str, max_smiles_chars: int = SMILES_MAX_CHARS
) -> tuple[str, str]:
    """The prompt text before and after the graph slots (``{smiles}`` and ``{instruction}``
    filled in one pass, so braces inside them are left alone)."""
    parts = template.split("{graph}")
    if len(parts) != 2:
        raise ValueError(f"the prompt template needs exactly one {{graph}}: {template!r}")
    values = {"smiles": smiles[:max_smiles_chars], "instruction": instruction}
    before, after = (_FIELD.sub(lambda m: values[m.group(1)], part) for part in parts)
    return before, after


def encode_prompt_rows(
    tokenizer,
    smiles: Sequence[str],
    instructions: str | Sequence[str],
    num_query_tokens: int,
    targets: Sequence[str] | None = None,
    *,
    template: str = DEFAULT_TEMPLATE,
    max_smiles_chars: int = SMILES_MAX_CHARS,
    max_target_tokens: int | None = 128,
    add_eos: bool = True,
) -> list[PromptRow]:
    """Tokenize prompts (and targets) without padding; see :func:`build_prompts`. One batched
    tokenizer call per piece: the same ids as one call per text."""
    n = len(smiles)
    if isinstance(instructions, str):
        instructions = [instructions] * n
    if len(instructions) != n or (targets is not None and len(targets) != n):
        raise ValueError("smiles, instructions and targets need one entry per row")
    pad = tokenizer.pad_token_id
    if pad is None:
        raise ValueError("the tokenizer has no pad token")

    def encode(texts: Sequence[str]) -> list[list[int]]:
        ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if n else []
        return [row if text else [] for row, text in zip(ids, texts)]

    pieces = [
        split_template(template, s, i, max_smiles_chars) for s, i in zip(smiles, instructions)
    ]
    before = encode([b for b, _ in pieces])
    after = encode([a for _, a in pieces])
    goals = encode(list(targets)) if targets is not None else [[] for _ in range(n)]
    rows = []
    for i in range(n):
        prompt_ids = [*before[i], *[pad] * num_query_tokens, *after[i]]
        target_ids: list[int] = []
        if targets is not None:
            target_ids = goals[i][:max_target_tokens]
            if add_eos:
                target_ids.append(tokenizer.eos_token_id)
        labels = [IGNORE_INDEX] * len(prompt_ids) + target_ids
        rows.append(PromptRow(prompt_ids + target_ids, labels, len(before[i])))
    return rows


def pad_prompt_rows(
    rows: Sequence[PromptRow],
    pad: int,
    num_query_tokens: int,
    padding_side: Literal["left", "right"] = "right",
) -> PromptBatch:
    """Pad tokenized rows into a :class:`PromptBatch` (all indices computed here, on the CPU)."""
    n = len(rows)
    length = max(len(row.ids) for row in rows)
    input_ids = torch.full((n, length), pad, dtype=torch.long)
    labels = torch.full((n, length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((n, length), dtype=torch.long)
    offsets = [0 if padding_side == "right" else length - len(row.ids) for row in rows]
    for i, row in enumerate(rows):
        span = slice(offsets[i], offsets[i] + len(row.ids))
        input_ids[i, span] = torch.tensor(row.ids)
        labels[i, span] = torch.tensor(row.labels)
        attention_mask[i, span] = 1
    starts = torch.tensor([o + row.graph_start for o, row in zip(offsets, rows)], dtype=torch.long)
    graph_index = starts[:, None] + torch.arange(num_query_tokens)
    graph_mask = torch.zeros((n, length), dtype=torch.bool)
    graph_mask.scatter_(1, graph_index, True)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    following = labels[:, 1:]
    predicts = torch.zeros_like(labels, dtype=torch.bool)
    predicts[:, :-1] = following != IGNORE_INDEX
    loss_index = predicts.flatten().nonzero().flatten()
    loss_targets = following[following != IGNORE_INDEX]
    return PromptBatch(
        input_ids,
        attention_mask,
        labels,
        graph_mask,
        position_ids,
        graph_index,
        loss_index,
        loss_targets,
    )


def build_prompts(
    tokenizer,
    smiles: Sequence[str],
    instructions: str | Sequence[str],
    num_query_tokens: int,
    targets: Sequence[str] | None = None,
    *,
    template: str = DEFAULT_TEMPLATE,
    max_smiles_chars: int = SMILES_MAX_CHARS,
    max_target_tokens: int | None = 128,
    add_eos: bool = True,
    padding_side: Literal["left", "right"] | None = None,
) -> PromptBatch:
    """Tokenize and pad a batch of prompts (and targets, for training).

    Parameters
    ----------
    tokenizer
        The LM's tokenizer (needs a pad token; an eos token when ``add_eos``).
    smiles, instructions
        One SMILES per row; one instruction for all rows or one per row.
    num_query_tokens
        ``Nq``, the number of graph slots placed right after the SMILES.
    targets
        The text to learn, one per row, or None (generation: no labels).
    max_target_tokens
        Target tokens kept (before the eos token); None keeps all.
    add_eos
        End each target with the eos token, so that the LM learns where to stop.
    padding_side
        Default ``"right"`` with targets (training), ``"left"`` without (generation).
    """
    rows = encode_prompt_rows(
        tokenizer,
        smiles,
        instructions,
        num_query_tokens,
        targets,
        template=template,
        max_smiles_chars=max_smiles_chars,
        max_target_tokens=max_target_tokens,
        add_eos=add_eos,
    )
    padding_side = padding_side or ("right" if targets is not None else "left")
    return pad_prompt_rows(rows, tokenizer.pad_token_id, num_query_tokens, padding_side)


def assemble_inputs(
    embeddings: nn.Module, batch: PromptBatch, graph_embeds: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The LM's keyword inputs, with the graph embeddings in their slots.

    Parameters
    ----------
    embeddings
        The LM's token embedding (``lm.get_input_embeddings()``).
    batch
        From :func:`build_prompts`.
    graph_embeds
        ``[B, Nq, D]`` projected Q-Former outputs (``D`` = the LM's hidden size); gradients
        flow back into them.

    Returns
    -------
    dict
        ``inputs_embeds`` ``[B, L, D]``, ``attention_mask``, ``position_ids`` and ``labels``
        ``[B, L]``: ``lm(**inputs).loss`` is the mean cross-entropy over the target tokens
        (drop ``labels`` for generation).
    """
    embeds = embeddings(batch.input_ids)
    b, nq = graph_embeds.shape[:2]
    # shapes only: comparing values would make the CPU wait for the accelerator
    if (
        graph_embeds.shape[-1] != embeds.shape[-1]
        or b != embeds.shape[0]
        or batch.graph_index.shape[1] != nq
    ):
        raise ValueError(
            f"graph embeddings {tuple(graph_embeds.shape)} do not fit the batch: "
            f"{embeds.shape[0]} rows with {batch.graph_index.shape[1]} graph slots of width "
            f"{embeds.shape[-1]}"
        )
    index = batch.graph_index[..., None].expand(-1, -1, embeds.shape[-1])
    inputs_embeds = embeds.scatter(1, index, graph_embeds.to(embeds.dtype))
    return {
        "inputs_embeds": inputs_embeds,
        "attention_mask": batch.attention_mask,
        "position_ids": batch.position_ids,
        "labels": batch.labels,
    }


def causal_padding_mask(attention_mask: torch.Tensor, lm_config) -> torch.Tensor:
    """``[B, 1, L, L]``: causal and padding masks in one, built on the device.

    transformers builds the same mask from the 2D one, but first reads values back from the
    device (whether the mask can be skipped, whether the positions hold packed sequences), a
    synchronization every step; a 4D mask is taken as it is. Boolean for SDPA, additive
    otherwise (eager attention adds it to the scores)."""
    length = attention_mask.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=attention_mask.device).tril()
    mask = causal & attention_mask.bool()[:, None, None, :]
    if getattr(lm_config, "_attn_implementation", "sdpa") == "sdpa":
        return mask
    return torch.zeros(mask.shape, device=mask.device).masked_fill(~mask, torch.finfo().min)
