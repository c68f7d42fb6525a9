"""The data layer's command config: each field is one flag of ``molfm data prepare``
(declared once, :mod:`molfm.options`).

Pure Python (no RDKit, no pandas), so the CLI can build its flags without loading anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from molfm.options import ON_INVALID, EngineOptions, cache_dir_option, option

__all__ = ["PrepareConfig"]


@dataclass(kw_only=True)
class PrepareConfig(EngineOptions):
    """What ``molfm data prepare`` featurizes, and how (:func:`molfm.data.prepare.prepare`).

    The data is a registered data set (``name`` or ``data``, the same thing) or a file of one's
    own (``data_path``).
    """

    name: str | None = option(
        None,
        argument=True,
        help="The data set to prepare (see `molfm data list`); the same as --data NAME.",
    )
    data: str | None = option(None, help="The data set to prepare (see `molfm data list`).")
    subset: str | None = option(
        None, help="The subset to prepare, e.g. train or test for moses (default: its default)."
    )
    data_path: str | None = option(
        None,
        path="file",
        help="A file of your own to prepare instead of a data set: CSV/TSV of SMILES or SDF.",
    )
    smiles_column: str = option("smiles", help="Column of the CSV that holds SMILES.")
    target_columns: list[str] | None = option(
        None, help="Target columns of the CSV (repeat the flag for several)."
    )
    text_column: str | None = option(None, help="Column of the CSV that holds text.")
    on_invalid: str = option(
        "error",
        choices=ON_INVALID,
        help="A bad row stops the run (error) or is skipped and listed in invalid.csv (skip).",
    )
    num_workers: int = option(
        0,
        flags=("--num-workers", "-j"),
        min=0,
        help="Worker processes (or Ray actors with --engine ray) that featurize shards in "
        "parallel (0 or 1 = in this process).",
    )
    shard_size: int = option(10_000, min=1, help="Input rows per cache shard.")
    limit: int | None = option(None, min=1, help="Prepare only the first N rows.")
    largest_fragment: bool = option(
        False, help="Keep only the largest fragment of each molecule (drops salts and solvents)."
    )
    neutralize: bool = option(False, help="Neutralize charges where possible.")
    max_heavy_atoms: int | None = option(
        None, min=1, help="Reject molecules with more heavy atoms than this."
    )
    feature_schema: str = option("ogb", help="The 2D atom and bond feature schema.")
    conformers: bool = option(
        False,
        help="Give molecules without coordinates an RDKit conformer (ETKDGv3 + MMFF, seeded); "
        "molecules that cannot be embedded are rejected rows.",
    )
    conformer_seed: int = option(0, help="Seed of the conformer embedding.")
    cache_dir: str | None = cache_dir_option()
