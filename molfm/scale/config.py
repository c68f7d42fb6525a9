"""``molfm embed``'s config: each field is one flag (declared once, :mod:`molfm.options`).
Pure Python, so the CLI builds its flags without loading a model."""

from __future__ import annotations

from dataclasses import dataclass

from molfm.engine.options import ON_INVALID, HardwareOptions, option
from molfm.options import StreamOptions

__all__ = ["EmbedConfig", "EMBED_MODES"]

EMBED_MODES = ("available", "2d", "3d", "2d3d")


@dataclass(kw_only=True)
class EmbedConfig(StreamOptions, HardwareOptions):
    """Everything ``molfm embed`` depends on (saved beside its output)."""

    model: str = option(
        "transformer-m-small-qm9",
        help="Any shipped model or a run's model/ directory with an encoder: a graph encoder "
        "(Transformer-M, GPS, GINE, or a property model's), GP-MoLFormer, or MolCA.",
    )
    data_path: str = option(
        flags=("--data-path",),
        path="file",
        help="A CSV/TSV or Parquet file of SMILES, or an SDF (3D); read in parts.",
    )
    output: str = option(
        "embeddings.parquet",
        flags=("--output", "-o"),
        path="file",
        help="The Parquet file to write: row, the id column, smiles, embedding.",
    )
    smiles_column: str = option("smiles", help="Column that holds SMILES.")
    id_column: str | None = option(None, help="A column copied to the output beside each vector.")
    conformers: bool = option(
        False, help="Generate an RDKit conformer per SMILES so 3D-capable encoders use 3D."
    )
    mode: str = option(
        "available",
        choices=EMBED_MODES,
        help="Transformer-M's channels: every channel a molecule has data for, or one mode.",
    )
    on_invalid: str = option(
        "error",
        choices=ON_INVALID,
        help="A bad row stops the run (error) or is skipped and listed in invalid.csv (skip).",
    )
    batch_size: int = option(64, min=1, help="Molecules per forward pass.")
    num_workers: int = option(
        1, flags=("--num-workers", "-j"), min=0, help="Processes for conformer generation."
    )
