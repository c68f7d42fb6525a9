"""Why generated SMILES are invalid: a breakdown next to MOSES's ``valid``.

MOSES counts a SMILES as valid when RDKit parses *and* sanitizes it
(:func:`molfm.chem.parse.mol_or_none`). A generator's invalid strings fail for different
reasons, and the remedies differ: a syntax mask can prevent unclosed rings and branches, not an
aromatic ring without a hydrogen on its nitrogen. Each invalid string gets one kind:

* ``empty``: the empty string;
* ``syntax``: RDKit cannot read it at all (unclosed ring bond or branch, bad bracket atom, ...);
* ``kekulization``: an aromatic system RDKit cannot write with alternating single/double bonds
  (typically a missing ``[nH]``: ``c1ccnn1``);
* ``valence``: an atom with more bonds than its valence allows (``C(C)(C)(C)(C)C``);
* ``other``: any other sanitization failure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from rdkit import Chem, rdBase

from molfm.chem.parse import mol_or_none

__all__ = ["INVALID_KINDS", "invalid_kind", "invalid_breakdown"]

INVALID_KINDS = ("empty", "syntax", "kekulization", "valence", "other")

_PROBLEM_KINDS = {
    "KekulizeException": "kekulization",
    "AtomKekulizeException": "kekulization",
    "AtomValenceException": "valence",
}


def invalid_kind(smiles: str) -> str | None:
    """``None`` for a SMILES MOSES counts as valid, else its kind (see :data:`INVALID_KINDS`).

    The kind of a string that parses but fails sanitization is that of RDKit's first reported
    chemistry problem (``Chem.DetectChemistryProblems``).
    """
    if len(smiles) == 0:
        return "empty"
    if mol_or_none(smiles) is not None:
        return None
    with rdBase.BlockLogs():
        raw = Chem.MolFromSmiles(smiles, sanitize=False)
        if raw is None:
            return "syntax"
        problems = Chem.DetectChemistryProblems(raw)
    if not problems:
        return "other"
    return _PROBLEM_KINDS.get(problems[0].GetType(), "other")


def invalid_breakdown(smiles: Iterable[str]) -> dict[str, int]:
    """Number of invalid strings of each kind, every kind present (zeros included)."""
    counts = Counter(kind for s in smiles if (kind := invalid_kind(s)) is not None)
    return {kind: counts.get(kind, 0) for kind in INVALID_KINDS}
