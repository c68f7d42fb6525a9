"""The QM9 protocol of 3D-PGT (after GraphMVP / 3D Infomax): 50k molecules with their DFT
geometry for pretraining, a disjoint 50k for fine-tuning and testing on the 2D graph alone.

:func:`qm9_protocol_splits` draws both from one seeded permutation of the prepared QM9 set, so
no molecule is in both, and writes two split files that ``molfm pretrain 3d-pgt --split-file``
and ``molfm train property --split-file`` read.

Fine-tuning targets (the 8 of 3D Infomax's table; U0, U, H and G are left out because U0 is the
pretraining surrogate): ``mu`` (D), ``alpha`` (bohr^3), ``homo``, ``lumo``, ``gap``, ``zpve``
(reported in meV), ``r2`` (bohr^2), ``cv`` (cal/(mol K)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from molfm.data.splits import Split

__all__ = ["QM9_FINETUNE_TARGETS", "qm9_protocol_splits"]

QM9_FINETUNE_TARGETS = ("mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "cv")


def qm9_protocol_splits(
    n_molecules: int,
    out_dir: str | Path,
    *,
    seed: int = 0,
    n_pretrain: int = 50_000,
    n_heldout: int = 2_000,
    n_finetune: int = 50_000,
    finetune_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> tuple[Path, Path]:
    """Write ``pretrain_split.npz`` and ``finetune_split.npz`` into ``out_dir``.

    Pretraining: ``train`` = ``n_pretrain`` molecules, ``val`` = ``n_heldout`` more (the weight
    search's held-out energies; also disjoint from fine-tuning). Fine-tuning: the next
    ``n_finetune`` molecules split ``finetune_fractions`` into train/val/test.
    """
    if n_pretrain + n_heldout + n_finetune > n_molecules:
        raise ValueError(
            f"the protocol needs {n_pretrain + n_heldout + n_finetune} molecules, the data has "
            f"{n_molecules}"
        )
    order = np.random.default_rng(seed).permutation(n_molecules)
    pretrain = order[:n_pretrain]
    heldout = order[n_pretrain : n_pretrain + n_heldout]
    finetune = order[n_pretrain + n_heldout : n_pretrain + n_heldout + n_finetune]
    n_train = int(finetune_fractions[0] * n_finetune)
    n_val = int(finetune_fractions[1] * n_finetune)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    empty = np.zeros(0, dtype=np.int64)
    pre = Split(np.sort(pretrain), np.sort(heldout), empty).save(out / "pretrain_split.npz")
    fine = Split(
        np.sort(finetune[:n_train]),
        np.sort(finetune[n_train : n_train + n_val]),
        np.sort(finetune[n_train + n_val :]),
    ).save(out / "finetune_split.npz")
    return pre, fine
