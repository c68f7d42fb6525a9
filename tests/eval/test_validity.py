"""Invalid-SMILES breakdown: one kind per invalid string, consistent with MOSES's ``valid``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from molfm.eval.moses import fraction_valid
from molfm.eval.validity import INVALID_KINDS, invalid_breakdown, invalid_kind


@pytest.mark.parametrize(
    ("smiles", "kind"),
    [
        ("CCO", None),
        ("c1cc[nH]n1", None),  # pyrazole written correctly
        ("", "empty"),
        ("C1CC", "syntax"),  # unclosed ring bond
        ("CC(C", "syntax"),  # unclosed branch
        ("C[Xx]C", "syntax"),  # not an element
        ("c1ccnn1", "kekulization"),  # pyrazole without the hydrogen on N
        ("c1cccc1", "kekulization"),  # five aromatic carbons
        ("C(C)(C)(C)(C)C", "valence"),  # five-valent carbon
        ("O=O=O", "valence"),
    ],
)
def test_invalid_kind(smiles: str, kind: str | None) -> None:
    assert invalid_kind(smiles) == kind


def test_breakdown_counts_exactly_the_strings_moses_rejects(
    read: Callable[[str], list[str]],
) -> None:
    # Real MOSES molecules, then the same molecules broken in known ways.
    good = read("moses_test_200.csv")
    with_nh = [s.replace("[nH]", "n", 1) for s in good if "[nH]" in s][:10]
    broken = [s + "1" for s in good[:20]] + [s + "(" for s in good[20:40]]  # syntax
    broken += ["C(C)(C)(C)(C)" + s for s in good[40:50]]  # a five-valent carbon
    smiles = good[:60] + broken + with_nh + [""]
    counts = invalid_breakdown(smiles)
    assert tuple(counts) == INVALID_KINDS
    n_invalid = round((1 - fraction_valid(smiles)) * len(smiles))
    assert sum(counts.values()) == n_invalid
    assert len(with_nh) == 10
    assert counts == {"empty": 1, "syntax": 40, "kekulization": 10, "valence": 10, "other": 0}
