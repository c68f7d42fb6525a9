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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

import torch
from torch import nn

__all__ = [
    "DEFAULT_TEMPLATE",
    "IGNORE_INDEX",
    "SMILES_MAX_CHARS",
    "PromptBatch",
    "split_template",
    "build_prompts",
    "assemble_inputs",
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
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    graph_mask: torch.Tensor
    position_ids: torch.Tensor

    def to(self, device: str | torch.device) -> PromptBatch:
        return PromptBatch(*(getattr(self, f.name).to(device) for f in fields(self)))


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
    n = len(smiles)
    if isinstance(instructions, str):
        instructions = [instructions] * n
    if len(instructions) != n or (targets is not None and len(targets) != n):
        raise ValueError("smiles, instructions and targets need one entry per row")
    padding_side = padding_side or ("right" if targets is not None else "left")
    pad = tokenizer.pad_token_id
    if pad is None:
        raise ValueError("the tokenizer has no pad token")

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    rows: list[tuple[list[int], list[int], list[int]]] = []  # ids, labels, graph-slot flags
    for i in range(n):
        before, after = split_template(template, smiles[i], instructions[i], max_smiles_chars)
        before_ids = encode(before)
        prompt_ids = [*before_ids, *[pad] * num_query_tokens, *encode(after)]
        graph = [0] * len(prompt_ids)
        graph[len(before_ids) : len(before_ids) + num_query_tokens] = [1] * num_query_tokens
        target_ids: list[int] = []
        if targets is not None:
            target_ids = encode(targets[i])[:max_target_tokens]
            if add_eos:
                target_ids.append(tokenizer.eos_token_id)
        ids = prompt_ids + target_ids
        labels = [IGNORE_INDEX] * len(prompt_ids) + target_ids
        rows.append((ids, labels, graph + [0] * len(target_ids)))

    length = max(len(ids) for ids, _, _ in rows)
    shape = (n, length)
    input_ids = torch.full(shape, pad, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    graph_mask = torch.zeros(shape, dtype=torch.bool)
    for i, (ids, row_labels, graph) in enumerate(rows):
        span = slice(0, len(ids)) if padding_side == "right" else slice(length - len(ids), length)
        input_ids[i, span] = torch.tensor(ids)
        attention_mask[i, span] = 1
        labels[i, span] = torch.tensor(row_labels)
        graph_mask[i, span] = torch.tensor(graph, dtype=torch.bool)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return PromptBatch(input_ids, attention_mask, labels, graph_mask, position_ids)


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
    slots = batch.graph_mask.sum(-1)
    if graph_embeds.shape[-1] != embeds.shape[-1] or b != embeds.shape[0] or (slots != nq).any():
        raise ValueError(
            f"graph embeddings {tuple(graph_embeds.shape)} do not fit the batch: "
            f"{embeds.shape[0]} rows with {slots.tolist()} graph slots of width {embeds.shape[-1]}"
        )
    # masked_scatter fills the slots row by row in order, i.e. graph_embeds flattened [B*Nq, D]
    source = graph_embeds.to(embeds.dtype).contiguous()
    inputs_embeds = embeds.masked_scatter(batch.graph_mask[..., None], source)
    return {
        "inputs_embeds": inputs_embeds,
        "attention_mask": batch.attention_mask,
        "position_ids": batch.position_ids,
        "labels": batch.labels,
    }
