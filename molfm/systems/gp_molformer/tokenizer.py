"""Atom-level regex SMILES tokenizer (MoLFormer style).

A SMILES string is split into chemically meaningful tokens with one regular expression:

* a bracket atom is one token, whatever it holds: ``[C@@H]``, ``[nH]``, ``[N+]``, ``[O-]``,
  ``[13CH3]``, ``[Na+]``;
* the two-letter organic-subset atoms ``Br`` and ``Cl`` are one token (``B``/``C`` otherwise);
* the other organic-subset atoms ``N O S P F I`` and aromatic ``b c n o s p``;
* ring bonds: one digit ``1``..``9``/``0``, or ``%nn`` (two digits) as one token;
* bonds and the rest of the syntax: ``( ) . = # - + \\ / : ~ @ ? > * $``.

The token set follows the regex used by MoLFormer and GP-MoLFormer (Ross et al. 2022, 2024),
written here from its description. Tokenization is lossless: ``"".join(tokenize(s)) == s`` for
every accepted string, and a string the regex cannot cover raises a ``ValueError`` naming the
SMILES and the first uncovered position (no characters are ever dropped silently).

The vocabulary is built from training data (:meth:`SmilesTokenizer.build`). Four special tokens
come first with fixed ids: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

__all__ = [
    "SMILES_REGEX",
    "SPECIAL_TOKENS",
    "SmilesTokenizer",
    "UnknownTokenError",
    "tokenize_smiles",
]

SMILES_REGEX = re.compile(
    r"\[[^\[\]]+\]"  # bracket atom: one token
    r"|Br|Cl"  # two-letter organic-subset atoms (before B / C)
    r"|%\d\d"  # two-digit ring bond
    r"|[BCNOSPFI]|[bcnosp]"  # one-letter organic subset, aliphatic and aromatic
    r"|[()\.=#\-+\\/:~@?>*$]"  # branches, bonds, dot, charges, wildcard, ...
    r"|\d"  # one-digit ring bond
)
"""The atom-level SMILES regex; one match is one token."""

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
"""Special tokens in id order: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3."""

_FORMAT = "molfm-smiles-regex"
_FORMAT_VERSION = 1


class UnknownTokenError(ValueError):
    """A SMILES holds tokens that are not in the vocabulary (``encode(..., unknown="error")``)."""

    def __init__(self, smiles: str, tokens: Sequence[str]) -> None:
        self.smiles = smiles
        self.tokens = list(tokens)
        super().__init__(
            f"SMILES {smiles!r} contains token(s) not in the vocabulary: "
            f"{', '.join(repr(t) for t in self.tokens)} "
            f"(use unknown='unk' to map them to {UNK})"
        )


def tokenize_smiles(smiles: str) -> list[str]:
    """Split ``smiles`` into regex tokens; the tokens join back to ``smiles`` exactly.

    Raises
    ------
    ValueError
        If some character cannot be covered by :data:`SMILES_REGEX` (an unclosed bracket, a
        letter outside the organic subset, whitespace, ...). The message names the SMILES,
        the 0-based position and the text found there.
    """
    if not isinstance(smiles, str):
        raise TypeError(f"expected a SMILES string, got {type(smiles).__name__}")
    if not smiles:
        raise ValueError("cannot tokenize an empty SMILES string")
    tokens: list[str] = []
    pos = 0
    for match in SMILES_REGEX.finditer(smiles):
        if match.start() != pos:
            break
        tokens.append(match.group())
        pos = match.end()
    if pos != len(smiles):
        raise ValueError(
            f"cannot tokenize SMILES {smiles!r}: no token matches at position {pos} "
            f"({smiles[pos : pos + 10]!r})"
        )
    return tokens


class SmilesTokenizer:
    """Regex atom-level SMILES tokenizer with a vocabulary built from data.

    Parameters
    ----------
    tokens
        The regular (non-special) tokens in id order; token ``tokens[i]`` gets id ``4 + i``.
        Usually produced by :meth:`build` or restored by :meth:`from_dict` / :meth:`load`.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        clash = [t for t in tokens if t in SPECIAL_TOKENS]
        if clash:
            raise ValueError(f"regular tokens may not include special tokens: {clash}")
        if len(set(tokens)) != len(tokens):
            dupes = sorted(t for t, c in Counter(tokens).items() if c > 1)
            raise ValueError(f"duplicate tokens in vocabulary: {dupes}")
        self._id_to_token: list[str] = [*SPECIAL_TOKENS, *tokens]
        self._token_to_id: dict[str, int] = {t: i for i, t in enumerate(self._id_to_token)}

    # ----------------------------------------------------------------------------- building
    @classmethod
    def build(cls, smiles: Iterable[str], min_frequency: int = 1) -> SmilesTokenizer:
        """Build the vocabulary from training SMILES.

        Tokens seen at least ``min_frequency`` times are kept, ordered by decreasing count and
        then alphabetically (deterministic for a given data set).

        Raises
        ------
        ValueError
            If a SMILES cannot be tokenized (the message names it and the position).
        """
        if min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
        counts: Counter[str] = Counter()
        for s in smiles:
            counts.update(tokenize_smiles(s))
        kept = [t for t, c in counts.items() if c >= min_frequency]
        kept.sort(key=lambda t: (-counts[t], t))
        return cls(kept)

    # ---------------------------------------------------------------------------- properties
    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""
        return len(self._id_to_token)

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return 1

    @property
    def eos_id(self) -> int:
        return 2

    @property
    def unk_id(self) -> int:
        return 3

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset(range(len(SPECIAL_TOKENS)))

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order, special tokens first."""
        return list(self._id_to_token)

    def token_to_id(self, token: str) -> int | None:
        """Id of ``token``, or ``None`` if it is not in the vocabulary."""
        return self._token_to_id.get(token)

    def id_to_token(self, index: int) -> str:
        return self._id_to_token[index]

    # ------------------------------------------------------------------------ encode/decode
    def tokenize(self, smiles: str) -> list[str]:
        """Regex tokens of ``smiles``; see :func:`tokenize_smiles`."""
        return tokenize_smiles(smiles)

    def encode(
        self,
        smiles: str,
        add_special: bool = True,
        unknown: Literal["error", "unk"] = "error",
    ) -> list[int]:
        """Token ids of ``smiles``, framed as ``<bos> ... <eos>`` when ``add_special``.

        Parameters
        ----------
        unknown
            ``"error"`` raises :class:`UnknownTokenError` naming the SMILES and every token
            missing from the vocabulary; ``"unk"`` maps them to ``<unk>``.
        """
        if unknown not in ("error", "unk"):
            raise ValueError(f"unknown must be 'error' or 'unk', got {unknown!r}")
        ids: list[int] = [self.bos_id] if add_special else []
        missing: list[str] = []
        for token in tokenize_smiles(smiles):
            index = self._token_to_id.get(token)
            if index is None:
                if token not in missing:
                    missing.append(token)
                index = self.unk_id
            ids.append(index)
        if missing and unknown == "error":
            raise UnknownTokenError(smiles, missing)
        if add_special:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """SMILES string of ``ids``: stops at the first ``<eos>`` and skips special tokens."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"decode expects a 1-D sequence of ids, got shape {ids.shape}")
            ids = ids.tolist()
        pieces: list[str] = []
        n = self.vocab_size
        for index in ids:
            index = int(index)
            if index == self.eos_id:
                break
            if not 0 <= index < n:
                raise ValueError(f"token id {index} out of range for vocabulary size {n}")
            if index >= len(SPECIAL_TOKENS):
                pieces.append(self._id_to_token[index])
        return "".join(pieces)

    def encode_batch(
        self,
        smiles_list: Sequence[str],
        max_length: int | None = None,
        *,
        add_special: bool = True,
        unknown: Literal["error", "unk"] = "error",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode and right-pad a batch with ``<pad>``.

        Parameters
        ----------
        smiles_list
            ``B`` SMILES strings.
        max_length
            Longest allowed encoded length (special tokens included); a longer SMILES raises
            ``ValueError`` (truncating a SMILES would make a different molecule). ``None``
            means no limit.

        Returns
        -------
        ids
            LongTensor ``[B, T]`` with ``T`` the longest encoded length in the batch.
        lengths
            LongTensor ``[B]``: the number of real tokens per row. The attention mask is
            ``torch.arange(T) < lengths[:, None]``.
        """
        if len(smiles_list) == 0:
            raise ValueError("encode_batch needs at least one SMILES")
        encoded = [self.encode(s, add_special=add_special, unknown=unknown) for s in smiles_list]
        lengths = [len(e) for e in encoded]
        if max_length is not None:
            for s, n in zip(smiles_list, lengths, strict=True):
                if n > max_length:
                    raise ValueError(
                        f"SMILES {s!r} encodes to {n} tokens, more than max_length={max_length}"
                    )
        ids = torch.full((len(encoded), max(lengths)), self.pad_id, dtype=torch.long)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = torch.tensor(e, dtype=torch.long)
        return ids, torch.tensor(lengths, dtype=torch.long)

    # ---------------------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable description (stored in checkpoint configs)."""
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "special_tokens": list(SPECIAL_TOKENS),
            "tokens": self._id_to_token[len(SPECIAL_TOKENS) :],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SmilesTokenizer:
        """Inverse of :meth:`to_dict`."""
        if data.get("format") != _FORMAT:
            raise ValueError(
                f"not a molfm SMILES tokenizer description: format={data.get('format')!r}"
            )
        if data.get("version") != _FORMAT_VERSION:
            raise ValueError(f"unsupported tokenizer format version {data.get('version')!r}")
        if list(data.get("special_tokens", [])) != list(SPECIAL_TOKENS):
            raise ValueError(
                f"special tokens {data.get('special_tokens')} != {list(SPECIAL_TOKENS)}"
            )
        return cls(data["tokens"])

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary as JSON to ``path``."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SmilesTokenizer:
        """Read a vocabulary JSON file written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SmilesTokenizer) and self._id_to_token == other._id_to_token

    def __hash__(self) -> int:
        return hash(tuple(self._id_to_token))

    def __repr__(self) -> str:
        return f"SmilesTokenizer(vocab_size={self.vocab_size})"
