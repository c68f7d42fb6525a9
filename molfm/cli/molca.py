"""``molfm train molca``, ``molfm name``, ``molfm caption`` and ``molfm retrieve``: MolCA.

Each command's flags are the fields of its config (:mod:`molfm.systems.molca.config`); the work
is done by :mod:`molfm.systems.molca.run`. Each writes its resolved config with its output.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console

from molfm.cli.build import RunContext, config_command
from molfm.cli.errors import invalid_input
from molfm.cli.train import app as train_app
from molfm.systems.molca.config import CaptionConfig, MolCATrainConfig, NameConfig, RetrieveConfig

__all__ = ["train_molca", "name", "caption", "retrieve"]

console = Console(soft_wrap=True)
app = typer.Typer()  # name, caption, retrieve (mounted on the top-level app)


def _file_outputs(cfg) -> list[Path | None]:
    output = cfg.output and Path(cfg.output)
    return [output, output and output.with_name("invalid.csv")]


@contextlib.contextmanager
def _bad_rows() -> Iterator[None]:
    """A bad SMILES of the user's file: one line with the --on-invalid skip hint."""
    from molfm.chem.parse import InvalidMoleculeError

    try:
        yield
    except InvalidMoleculeError as err:
        raise invalid_input(err) from None


def _report(written, what: str, *notes: str) -> None:
    console.print(f"wrote {len(written.frame)} {what} to {written.path}", highlight=False)
    for note in notes:
        console.print(note, highlight=False)
    if written.invalid is not None:
        console.print(
            f"rejected {written.rejected} rows, listed in {written.invalid}", highlight=False
        )


@config_command(train_app, "molca", MolCATrainConfig)
def train_molca(cfg: MolCATrainConfig, run: RunContext) -> None:
    """Train one MolCA stage (1, 2 or finetune) on pubchem-names or your SMILES + text file."""
    from molfm.systems.molca.run import train_molca as train

    with _bad_rows():
        model_dir = train(cfg, callbacks=run.callbacks())
    report = json.loads((Path(cfg.output_dir) / "metrics.json").read_text())
    console.print(f"[bold]saved[/bold] {model_dir}", highlight=False)
    console.print(json.dumps(report["metrics"], indent=2), markup=False, highlight=False)


@config_command(app, "name", NameConfig, outputs=_file_outputs)
def name(cfg: NameConfig, run: RunContext) -> None:
    """IUPAC names for every molecule of a CSV, Parquet or SDF file, in input order (beam
    search; read in parts like predict: --chunk-size, --workers, --engine ray, resumable)."""
    from molfm.scale.run import name as name_job

    with _bad_rows():
        result = name_job(cfg)
    run.save_config_beside(result.output)
    notes = []
    if cfg.verify:
        import pandas as pd

        verified = pd.read_csv(result.output, usecols=["verified"])["verified"].sum()
        notes.append(f"{int(verified)} verified by OPSIN")
    _report_stream(result, "names", *notes)


@config_command(app, "caption", CaptionConfig, outputs=_file_outputs)
def caption(cfg: CaptionConfig, run: RunContext) -> None:
    """A text description of every molecule of a CSV, in input order (beam search; read in
    parts like predict)."""
    from molfm.scale.run import caption as caption_job

    with _bad_rows():
        result = caption_job(cfg)
    run.save_config_beside(result.output)
    _report_stream(result, "captions")


def _report_stream(result, what: str, *notes: str) -> None:
    console.print(f"wrote {result.rows} {what} to {result.output}", highlight=False)
    for note in notes:
        console.print(note, highlight=False)
    if result.resumed_parts:
        console.print(
            f"resumed: {result.resumed_parts} of {result.parts} parts were already done",
            highlight=False,
        )
    if result.invalid_path is not None:
        console.print(
            f"rejected {result.n_rejected} rows, listed in {result.invalid_path}",
            highlight=False,
        )


@config_command(app, "retrieve", RetrieveConfig, outputs=_file_outputs)
def retrieve(cfg: RetrieveConfig, run: RunContext) -> None:
    """Text -> molecule (--text) or molecule -> text (--smiles) retrieval with a stage-1 model."""
    from molfm.systems.molca.run import retrieve_hits

    with _bad_rows():
        written = retrieve_hits(cfg)
    run.save_config_beside(written.path)
    _report(written, "hits")
