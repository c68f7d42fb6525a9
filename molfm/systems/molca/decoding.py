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

Choose the first two above what the training names hold (``benchmarks/molca_name_lengths.py``: locant
runs of up to 44 tokens at the 99.9th percentile, and real names that nest ``2-[`` 18 deep).
"""

from __future__ import annotations

import re

import torch

__all__ = [
    *("locant_token_ids", "LocantRunLimit", "RepeatLimit", "MoleculeLengthLimit"),
    *("molecule_caps", "beam_search"),
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
    **generate_kwargs,
) -> list[list[str]]:
    """:meth:`~.model.MolCA.generate`'s body: beam search over left-padded prompts; per
    molecule, ``num_return_sequences`` texts, best first. ``max_locant_run``, ``max_repeats``
    and ``max_tokens_per_atom`` > 0 turn on :class:`LocantRunLimit`, :class:`RepeatLimit` and
    :class:`MoleculeLengthLimit`."""
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
