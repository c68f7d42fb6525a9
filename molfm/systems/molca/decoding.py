"""Beam-search guards that make MolCA's decoding end: caps on runs of locant tokens and on
repeated units.

An undertrained naming model loops until the token cap in three ways seen on the test split:
counting locants (``1,2,3,...,46`` or ``13-14-15-...``), nesting one fragment
(``2-[2-[2-[...``) and repeating a word (``n,n-dimethyl-n,n-dimethyl-...``). Plain
``no_repeat_ngram_size`` stops none of them well: each ``,n`` is a new n-gram, and it forbids
n-grams that real IUPAC names repeat (``methyl``, ``-1-yl``). The guards end a hypothesis
instead (every score but the end of sequence's set to ``-inf``):

* :class:`LocantRunLimit`: its last ``max_run`` tokens are all locant tokens (digits, commas
  and hyphens);
* :class:`RepeatLimit`: its last tokens are one unit of 1 to ``max_unit`` tokens repeated
  ``max_repeats + 1`` times in a row;
* :class:`MoleculeLengthLimit`: it is as long as its molecule's own cap, ``tokens_per_atom``
  times the heavy atoms plus 16 (a name grows with its molecule: 5 per atom covers all but
  4 of the 55,463 training names). Beam search slips past pattern guards (``(2r,3r,4r,...``);
  this one it cannot.

They end a hypothesis abruptly. A length penalty ends it where the model itself puts the end
of sequence: :class:`OverlengthPenalty` charges every token but the end of sequence
``rate * k`` nats once a hypothesis is ``k`` tokens past its molecule's soft cap (``per_atom``
times the heavy atoms plus 16; 3 per atom covers all but 300 of the 55,463 training names). Unlike
``length_penalty``, which only rescales finished hypotheses, it makes continuing ever dearer, so
the search stops at the first ending the model finds plausible. A soft cap is at most 3/4 of
``max_new_tokens`` (:func:`soft_caps`), so a large molecule's beams meet the penalty before the
global cap too.

Choose the first two above what the training names hold (``benchmarks/molca_name_lengths.py``: locant
runs of up to 44 tokens at the 99.9th percentile, and real names that nest ``2-[`` 18 deep).
"""

from __future__ import annotations

import re

import torch

__all__ = [
    *("locant_token_ids", "LocantRunLimit", "RepeatLimit", "MoleculeLengthLimit"),
    *("OverlengthPenalty", "molecule_caps", "soft_caps", "beam_search", "beam_endings"),
]

CAP_BASE = 16  # tokens every molecule's cap starts from (prefixes, suffixes, eos)

_LOCANT = re.compile(r"^[0-9,\-]+$")


def locant_token_ids(tokenizer) -> list[int]:
    """Ids of the tokens that are only digits, commas and hyphens (once spaces are stripped)."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    out = []
    for index, token in enumerate(vocab):
        text = tokenizer.convert_tokens_to_string([token]).strip() if token else ""
        if text and _LOCANT.match(text):
            out.append(index)
    return out


class LocantRunLimit:
    """A transformers logits processor: a hypothesis whose last ``max_run`` tokens are all
    locant tokens may only end (every score but the eos token's set to ``-inf``).

    Parameters
    ----------
    locant_ids
        From :func:`locant_token_ids`.
    max_run
        Locant tokens in a row that end a hypothesis (>= 1).
    eos_token_id
        The token that ends it.
    """

    def __init__(self, locant_ids: list[int], max_run: int, eos_token_id: int) -> None:
        if max_run < 1:
            raise ValueError(f"max_run must be >= 1, not {max_run}")
        self.locants = torch.tensor(sorted(set(locant_ids)), dtype=torch.long)
        self.max_run, self.eos = max_run, eos_token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        if input_ids.shape[1] < self.max_run:
            return scores
        tail = input_ids[:, -self.max_run :]
        looping = torch.isin(tail, self.locants.to(tail.device)).all(dim=1)
        return _ended(scores, looping, self.eos)


def _ended(scores: torch.Tensor, rows: torch.Tensor, eos: int) -> torch.Tensor:
    """``scores`` with the hypotheses of the boolean ``rows`` allowed only to end."""
    ended = torch.full_like(scores, float("-inf"))
    ended[:, eos] = 0.0
    return torch.where(rows[:, None], ended, scores)


class RepeatLimit:
    """A transformers logits processor: a hypothesis whose last tokens are one unit of 1 to
    ``max_unit`` tokens repeated ``max_repeats + 1`` times in a row may only end.

    Parameters
    ----------
    max_repeats
        Repeats of a unit that a hypothesis may hold (>= 1).
    eos_token_id
        The token that ends it.
    max_unit
        Longest unit checked, in tokens.
    """

    def __init__(self, max_repeats: int, eos_token_id: int, max_unit: int = 8) -> None:
        if max_repeats < 1 or max_unit < 1:
            raise ValueError(
                f"max_repeats and max_unit must be >= 1, not {max_repeats}, {max_unit}"
            )
        self.copies, self.max_unit, self.eos = max_repeats + 1, max_unit, eos_token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        looping = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for unit in range(1, self.max_unit + 1):
            span = unit * self.copies
            if input_ids.shape[1] < span:
                break
            tail = input_ids[:, -span:].reshape(-1, self.copies, unit)  # [B, copies, unit]
            looping |= (tail == tail[:, -1:]).flatten(1).all(dim=1)
        return _ended(scores, looping, self.eos)


def molecule_caps(smiles, tokens_per_atom: float, max_new_tokens: int) -> torch.Tensor:
    """Per molecule, ``ceil(tokens_per_atom * heavy atoms) + 16`` tokens, at most
    ``max_new_tokens`` (``[B]``, long)."""
    import math

    from rdkit import Chem

    caps = []
    for s in smiles:
        mol = Chem.MolFromSmiles(s)
        atoms = mol.GetNumHeavyAtoms() if mol is not None else max_new_tokens
        caps.append(min(max_new_tokens, math.ceil(tokens_per_atom * atoms) + CAP_BASE))
    return torch.tensor(caps, dtype=torch.long)


def soft_caps(smiles, tokens_per_atom: float, max_new_tokens: int) -> torch.Tensor:
    """Per molecule, where :class:`OverlengthPenalty` starts: ``ceil(tokens_per_atom * heavy
    atoms) + 16`` tokens, at most ``max_new_tokens - max_new_tokens // 4`` (``[B]``, long)."""
    return molecule_caps(smiles, tokens_per_atom, max_new_tokens - max_new_tokens // 4)


class MoleculeLengthLimit:
    """A transformers logits processor: a hypothesis may only end once it is one token short of
    its molecule's cap (the end of sequence is the last token).

    Parameters
    ----------
    caps
        ``[B]`` tokens per molecule, eos included (:func:`molecule_caps`).
    num_beams
        Hypotheses per molecule: row ``i`` of the beams belongs to molecule ``i // num_beams``.
    eos_token_id
        The token that ends it.
    """

    def __init__(self, caps: torch.Tensor, num_beams: int, eos_token_id: int) -> None:
        self.caps = caps.repeat_interleave(num_beams)
        self.eos = eos_token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        caps = self.caps.to(input_ids.device)
        return _ended(scores, input_ids.shape[1] + 1 >= caps, self.eos)


class OverlengthPenalty:
    """A transformers logits processor, a length penalty that ends beams: once a hypothesis is
    ``k >= 1`` tokens past its molecule's soft cap, every next token but the end of sequence
    costs ``rate * k`` nats more.

    The end of sequence keeps its own log-probability, so finished hypotheses are not inflated
    and their order among themselves is the model's.

    Parameters
    ----------
    soft_caps
        ``[B]`` tokens per molecule past which the penalty grows (:func:`molecule_caps`).
    num_beams
        Hypotheses per molecule: row ``i`` of the beams belongs to molecule ``i // num_beams``.
    rate
        Nats per token past the soft cap (> 0).
    eos_token_id
        The token that ends a hypothesis.
    """

    def __init__(
        self, soft_caps: torch.Tensor, num_beams: int, rate: float, eos_token_id: int
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, not {rate}")
        self.soft_caps = soft_caps.repeat_interleave(num_beams)
        self.rate, self.eos = rate, eos_token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        # the token chosen now would be number input_ids.shape[1] + 1
        past = input_ids.shape[1] + 1 - self.soft_caps.to(input_ids.device)
        penalty = (self.rate * past.clamp(min=0)).to(scores.dtype)[:, None]
        penalized = scores - penalty
        penalized[:, self.eos] = scores[:, self.eos]
        return penalized


def beam_search(
    model,
    graphs,
    smiles,
    instruction: str,
    *,
    num_beams: int,
    num_return_sequences: int,
    max_new_tokens: int,
    max_locant_run: int = 0,
    max_repeats: int = 0,
    max_tokens_per_atom: float = 0.0,
    soft_cap_per_atom: float = 0.0,
    soft_cap_rate: float = 1.0,
    **generate_kwargs,
) -> list[list[str]]:
    """:meth:`~.model.MolCA.generate`'s body: beam search over left-padded prompts; per
    molecule, ``num_return_sequences`` texts, best first. ``max_locant_run``, ``max_repeats``,
    ``max_tokens_per_atom`` and ``soft_cap_per_atom`` > 0 turn on :class:`LocantRunLimit`,
    :class:`RepeatLimit`, :class:`MoleculeLengthLimit` and :class:`OverlengthPenalty` (with
    ``soft_cap_rate`` nats per token)."""
    from transformers import GenerationConfig

    if num_return_sequences > num_beams:
        raise ValueError(f"num_return_sequences ({num_return_sequences}) > num_beams ({num_beams})")
    tok = model.tokenizer
    config = GenerationConfig(
        num_beams=num_beams,
        num_return_sequences=num_return_sequences,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        **generate_kwargs,
    )
    processors = []
    if max_locant_run > 0:
        if getattr(model, "_locant_ids", None) is None:
            model._locant_ids = locant_token_ids(tok)  # one pass over the vocabulary, once
        processors.append(LocantRunLimit(model._locant_ids, max_locant_run, tok.eos_token_id))
    if max_repeats > 0:
        processors.append(RepeatLimit(max_repeats, tok.eos_token_id))
    if max_tokens_per_atom > 0:
        caps = molecule_caps(smiles, max_tokens_per_atom, max_new_tokens)
        processors.append(MoleculeLengthLimit(caps, num_beams, tok.eos_token_id))
    if soft_cap_per_atom > 0:
        soft = soft_caps(smiles, soft_cap_per_atom, max_new_tokens)
        processors.append(OverlengthPenalty(soft, num_beams, soft_cap_rate, tok.eos_token_id))
    training = model.training
    model.eval()
    try:
        inputs = model.lm_inputs(graphs, smiles, instruction, padding_side="left")
        out = model.lm.generate(
            inputs_embeds=inputs["inputs_embeds"],
            attention_mask=inputs["attention_mask"],  # positions follow from it
            generation_config=config,
            **({"logits_processor": processors} if processors else {}),
        )
    finally:
        model.train(training)
    texts = [t.strip() for t in tok.batch_decode(out, skip_special_tokens=True)]
    k = num_return_sequences
    return [texts[i * k : (i + 1) * k] for i in range(len(smiles))]


def beam_endings(
    lengths: list[list[int]],
    smiles,
    *,
    max_new_tokens: int,
    max_tokens_per_atom: float = 0.0,
    soft_cap_per_atom: float = 0.0,
) -> dict[str, int | None]:
    """Where beam search's texts ended: how many best beams (``beam0_``) and beams of all
    reached the hard cap (``max_new_tokens``, or the molecule's own cap whose last token is
    the end of sequence) and how many ended past the soft cap of :class:`OverlengthPenalty`.

    Parameters
    ----------
    lengths
        Per molecule, each beam's length in tokens, best beam first (no special tokens).
    smiles
        The molecules, for their caps.
    """
    n = len(lengths)
    caps = [max_new_tokens] * n
    if max_tokens_per_atom > 0:  # a text that ends at its molecule's cap is one token short
        caps = (molecule_caps(smiles, max_tokens_per_atom, max_new_tokens) - 1).tolist()
    at_cap = [[t >= cap for t in row] for row, cap in zip(lengths, caps, strict=True)]
    out: dict[str, int | None] = {
        "beam0_at_cap": sum(bool(row) and row[0] for row in at_cap),
        "beams_at_cap": sum(sum(row) for row in at_cap),
        "beam0_past_soft_cap": None,
        "beams_past_soft_cap": None,
    }
    if soft_cap_per_atom > 0:  # + 1: the end of sequence, which a soft cap counts
        soft = soft_caps(smiles, soft_cap_per_atom, max_new_tokens).tolist()
        past = [[t + 1 > s for t in row] for row, s in zip(lengths, soft, strict=True)]
        out["beam0_past_soft_cap"] = sum(bool(row) and row[0] for row in past)
        out["beams_past_soft_cap"] = sum(sum(row) for row in past)
    return out
