"""Batched SMILES sampling from GP-MoLFormer with the recurrent (O(1) per token) form.

Every sequence starts with ``<bos>`` (plus an optional prompt, ``prefix_ids``) and grows one
token at a time through :meth:`GPMoLFormer.step` until it emits ``<eos>`` or reaches
``max_length`` tokens (``<bos>`` and ``<eos>`` included).

* **Reproducible**: one ``torch.Generator`` seeded with ``seed`` drives every draw, so the same
  call (same model, seed, ``n``, ``batch_size``, device) gives the same molecules. Changing
  ``batch_size`` or the device changes the random stream, hence the molecules.
* **Finished sequences stop costing**: rows that emitted ``<eos>`` are no longer sampled, and
  they are dropped from the recurrent state once they make up a quarter of it
  (:data:`COMPACT_FRACTION`), so the batch shrinks as molecules finish. (Dropping them at
  every finish would copy the whole state, as costly as a decoding step, nearly every step.)
* **Prompts** (scaffold decoration, ...): ``prefix_ids`` are fed once through the recurrent
  state of a single sequence, and that state is shared by all samples.
* **Truncation**: a sequence that reaches ``max_length`` without ``<eos>`` is returned decoded
  as far as it got and flagged in :attr:`SampledSmiles.truncated` (its SMILES is usually
  incomplete; callers validate with RDKit anyway).
* ``<pad>``, ``<bos>`` and ``<unk>`` are never sampled (their logits are set to ``-inf``).
* ``syntax_mask=True`` also bans tokens that would break SMILES syntax (unclosed ring bonds or
  branches, an ending after a bond, ...; :mod:`molfm.systems.gp_molformer.syntax`).
* ``temperature=0`` means greedy decoding (argmax, no randomness).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

from molfm.systems.gp_molformer.syntax import SmilesSyntax, SyntaxState
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = [
    "COMPACT_FRACTION",
    "SampledSmiles",
    "top_k_filter",
    "top_p_filter",
    "sample_next_token",
    "sample_continuations",
    "repeat_state",
    "sample_ids",
    "sample",
]


COMPACT_FRACTION = 0.25
"""Finished rows are dropped from the recurrent state once they are this fraction of it."""


class SampledSmiles(list[str]):
    """A list of sampled SMILES strings with a per-item ``truncated`` flag.

    ``truncated[i]`` is true when sample ``i`` hit ``max_length`` before ``<eos>``. (The flags
    live on this object only: slicing gives a plain list.)
    """

    def __init__(self, smiles: Iterable[str], truncated: Iterable[bool]) -> None:
        super().__init__(smiles)
        self.truncated: list[bool] = list(truncated)
        if len(self.truncated) != len(self):
            raise ValueError("one truncated flag per SMILES is required")

    @property
    def n_truncated(self) -> int:
        return sum(self.truncated)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits per row, set the rest to ``-inf``.

    Parameters
    ----------
    logits
        ``[B, V]``.
    k
        ``k >= 1``; values tied with the k-th largest are kept too. ``k >= V`` is a no-op.

    Returns
    -------
    torch.Tensor
        ``[B, V]``, a new tensor.
    """
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k >= logits.shape[-1]:
        return logits.clone()
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # [B, 1]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability
    mass reaches ``p``, set the rest to ``-inf``.

    A token is dropped when the tokens ranked above it already hold at least ``p`` of the
    mass, so the most likely token is always kept.

    Parameters
    ----------
    logits
        ``[B, V]``.
    p
        ``0 < p <= 1``; ``p = 1`` is a no-op.

    Returns
    -------
    torch.Tensor
        ``[B, V]``, a new tensor.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    if p >= 1.0:
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # [B, V] probability of higher-ranked tokens
    drop_sorted = mass_before >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next_token(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row from ``logits`` ``[B, V]`` -> LongTensor ``[B]``.

    ``temperature=0`` is greedy (argmax); otherwise the logits are divided by ``temperature``,
    filtered by top-k then top-p, and sampled with ``generator``.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def sample_continuations(
    model: nn.Module,
    layer_states: list[tuple[torch.Tensor, torch.Tensor]],
    logits: torch.Tensor,
    *,
    position: int,
    n_tokens: int,
    generator: torch.Generator,
    banned: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    syntax: SmilesSyntax | None = None,
    rows_syntax: SyntaxState | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample up to ``n_tokens`` tokens per row, each row continuing its own recurrent state.

    The loop shared by de novo sampling, decoration-free prompts and pair-tuned optimization.
    Finished rows are no longer sampled; they leave the state once they are
    :data:`COMPACT_FRACTION` of it. The live rows are always sampled in row order, so the random
    stream does not depend on compaction.

    Parameters
    ----------
    model
        A GP-MoLFormer in eval mode.
    layer_states
        The rows' recurrent states, ``B`` rows; **updated in place** (pass own copies).
    logits
        ``[B, V]`` next-token logits of those states.
    position
        Position of the first sampled token (rotary phase).
    n_tokens
        Most tokens per row, ``<eos>`` included.
    generator
        Drives every draw.
    banned
        ``[K]`` token ids never sampled.
    temperature, top_k, top_p
        See :func:`sample_next_token`.
    syntax, rows_syntax
        Optional SMILES syntax mask and the rows' syntax state (``B`` rows).

    Returns
    -------
    tokens
        ``[B, n_tokens]`` LongTensor; row ``i`` is valid up to ``lengths[i]`` (then ``<eos>``).
    lengths
        ``[B]`` tokens before ``<eos>``; ``n_tokens`` when the row never wrote ``<eos>``
        (truncated).
    """
    eos = model.config.eos_id
    device = logits.device
    b = logits.shape[0]
    out = torch.full((b, n_tokens), eos, dtype=torch.long, device=device)
    lengths = torch.full((b,), n_tokens, dtype=torch.long, device=device)
    rows = torch.arange(b, device=device)  # row of `out` for each state row
    live = torch.ones(b, dtype=torch.bool, device=device)  # state rows still generating
    n_live = b
    for k in range(n_tokens):
        live_idx = None if n_live == len(rows) else live.nonzero().squeeze(1)
        live_logits = logits if live_idx is None else logits[live_idx]
        live_logits = live_logits.float().index_fill(-1, banned, float("-inf"))
        if rows_syntax is not None:
            banned_now = syntax.banned(rows_syntax, remaining=n_tokens - k)
            live_logits = live_logits.masked_fill(banned_now, float("-inf"))
        token = sample_next_token(
            live_logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        live_rows = rows if live_idx is None else rows[live_idx]
        out[live_rows, k] = token
        if rows_syntax is not None:
            rows_syntax = syntax.update(rows_syntax, token)
        finished = token == eos  # [n_live]
        if bool(finished.any()):
            lengths[live_rows[finished]] = k
            if rows_syntax is not None:
                rows_syntax = rows_syntax.select(~finished)
            live[finished if live_idx is None else live_idx[finished]] = False
            n_live -= int(finished.sum())
        if n_live == 0 or k == n_tokens - 1:
            break
        if live_idx is not None:  # finished rows are fed <eos>; their outputs are unused
            token = torch.full_like(rows, eos).index_copy_(0, live_idx, token)
        if len(rows) - n_live >= COMPACT_FRACTION * len(rows):
            rows, token = rows[live], token[live]
            layer_states = [(s[live], z[live]) for s, z in layer_states]
            live = torch.ones(n_live, dtype=torch.bool, device=device)
        logits, layer_states = model.step(token, position + k, layer_states, inplace=True)
    return out, lengths


def _iter_batches(
    model: nn.Module,
    n: int,
    *,
    batch_size: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    max_length: int | None,
    seed: int,
    device: torch.device | str,
    prefix_ids: list[int] | None,
    banned_ids: Iterable[int],
    syntax: SmilesSyntax | None = None,
) -> Iterator[tuple[list[list[int]], list[bool]]]:
    """Yield ``(ids, truncated)`` per batch; ids run from ``<bos>`` to ``<eos>`` inclusive."""
    config = model.config
    bos, eos = config.bos_id, config.eos_id
    max_length = config.max_length if max_length is None else max_length
    prompt = [bos, *(prefix_ids or [])]
    if len(prompt) > 1 and prompt[1] == bos:  # the caller already included <bos>
        prompt = prompt[1:]
    if any(t == eos or not 0 <= t < config.vocab_size for t in prompt):
        raise ValueError(f"prefix_ids must be token ids below {config.vocab_size}, without <eos>")
    if len(prompt) >= max_length:
        raise ValueError(
            f"prompt of {len(prompt)} tokens leaves no room below max_length={max_length}"
        )
    if n < 0 or batch_size < 1:
        raise ValueError(f"need n >= 0 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    device = torch.device(device)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    banned = torch.tensor(sorted(set(banned_ids)), dtype=torch.long, device=device)

    # Feed the prompt once (batch of 1); every sample starts from this state.
    state = model.init_state(1, device)
    logits = torch.empty(0)
    for position, token in enumerate(prompt):
        logits, state = model.step(torch.tensor([token], device=device), position, state)
    start = len(prompt)
    n_tokens = max_length - start
    prompt_syntax = syntax.feed(prompt) if syntax is not None else None

    for first in range(0, n, batch_size):
        b = min(batch_size, n - first)
        tokens, lengths = sample_continuations(
            model,
            repeat_state(state, b),  # own copies: sampling updates them in place
            logits.expand(b, -1),
            position=start,
            n_tokens=n_tokens,
            generator=generator,
            banned=banned,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            syntax=syntax,
            rows_syntax=prompt_syntax.expand(b) if prompt_syntax is not None else None,
        )
        ids: list[list[int]] = []
        truncated: list[bool] = []
        for row, length in zip(tokens.tolist(), lengths.tolist(), strict=True):
            truncated.append(length == n_tokens)
            ids.append(prompt + row[: length if truncated[-1] else length + 1])  # keep <eos>
        yield ids, truncated


def repeat_state(
    state: list[tuple[torch.Tensor, torch.Tensor]], n: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` own copies of a one-row recurrent state (for sampling, which works in place)."""
    return [
        (s.repeat(n, *([1] * (s.dim() - 1))), z.repeat(n, *([1] * (z.dim() - 1)))) for s, z in state
    ]


def _prepare(model: nn.Module, device: torch.device | str) -> bool:
    was_training = model.training
    model.to(device)
    model.eval()
    return was_training


@torch.inference_mode()
def sample_ids(
    model: nn.Module,
    n: int,
    *,
    batch_size: int = 512,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    max_length: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    prefix_ids: list[int] | None = None,
    banned_ids: Iterable[int] | None = None,
    callback: Callable[[list[list[int]], int], None] | None = None,
    syntax: SmilesSyntax | None = None,
) -> tuple[list[list[int]], list[bool]]:
    """Sample ``n`` token sequences; see :func:`sample` for the arguments.

    ``banned_ids`` are never sampled (default ``<pad>`` and ``<bos>``); ``callback`` is called
    after each batch with ``(batch_ids, n_done)``; ``syntax`` (a :class:`SmilesSyntax`)
    additionally bans tokens that would break SMILES syntax.

    Returns
    -------
    ids
        ``n`` lists of token ids from ``<bos>`` to ``<eos>`` inclusive (no ``<eos>`` when
        truncated), prompt included.
    truncated
        ``n`` flags: true when the sequence hit ``max_length`` without ``<eos>``.
    """
    config = model.config
    banned = [config.pad_id, config.bos_id] if banned_ids is None else list(banned_ids)
    was_training = _prepare(model, device)
    all_ids: list[list[int]] = []
    all_truncated: list[bool] = []
    try:
        for ids, truncated in _iter_batches(
            model,
            n,
            batch_size=batch_size,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            max_length=max_length,
            seed=seed,
            device=device,
            prefix_ids=prefix_ids,
            banned_ids=banned,
            syntax=syntax,
        ):
            all_ids.extend(ids)
            all_truncated.extend(truncated)
            if callback is not None:
                callback(ids, len(all_ids))
    finally:
        model.train(was_training)
    return all_ids, all_truncated


@torch.inference_mode()
def sample(
    model: nn.Module,
    tokenizer: SmilesTokenizer,
    n: int,
    *,
    batch_size: int = 512,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    max_length: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    prefix_ids: list[int] | None = None,
    callback: Callable[[list[str], int], None] | None = None,
    syntax_mask: bool = False,
) -> SampledSmiles:
    """Sample ``n`` SMILES strings from a GP-MoLFormer model.

    Parameters
    ----------
    model
        A :class:`~molfm.systems.gp_molformer.model.GPMoLFormer` (moved to ``device``; put in eval
        mode while sampling, its training flag restored afterwards).
    tokenizer
        The tokenizer the model was trained with (same vocabulary size and special ids).
    n
        Number of samples.
    batch_size
        Sequences generated together; part of the random stream (see module docstring).
    temperature
        Softmax temperature; 0 means greedy.
    top_k, top_p
        Optional top-k and nucleus filtering (applied in that order, after temperature).
    max_length
        Longest sequence in tokens, ``<bos>``/``<eos>`` and prompt included; default
        ``model.config.max_length``.
    seed
        Seed of the ``torch.Generator`` used for every draw.
    device
        Where to run.
    prefix_ids
        Prompt token ids placed after ``<bos>`` (e.g. ``tokenizer.encode(s,
        add_special=False)``); a leading ``<bos>`` is accepted. The returned SMILES include
        the prompt.
    callback
        Called after each batch with ``(batch_smiles, n_done)`` (progress bars, streaming).
    syntax_mask
        Ban tokens that would break SMILES syntax (unclosed rings or branches, a string ending
        after a bond, ...; :mod:`molfm.systems.gp_molformer.syntax`). Changes the distribution:
        report such samples separately from plain ones.

    Returns
    -------
    SampledSmiles
        ``n`` SMILES strings (a ``list[str]``) with the ``truncated`` flags.
    """
    config = model.config
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} tokens, model expects {config.vocab_size}"
        )
    if (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id) != (
        config.bos_id,
        config.eos_id,
        config.pad_id,
    ):
        raise ValueError("tokenizer and model disagree on the special token ids")
    smiles: list[str] = []

    def decode(ids: list[list[int]], n_done: int) -> None:
        batch = [tokenizer.decode(row) for row in ids]
        smiles.extend(batch)
        if callback is not None:
            callback(batch, n_done)

    _, truncated = sample_ids(
        model,
        n,
        batch_size=batch_size,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        max_length=max_length,
        seed=seed,
        device=device,
        prefix_ids=prefix_ids,
        banned_ids=[config.pad_id, config.bos_id, tokenizer.unk_id],
        callback=decode,
        syntax=SmilesSyntax(tokenizer, device) if syntax_mask else None,
    )
    return SampledSmiles(smiles, truncated)
