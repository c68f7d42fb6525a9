"""``molfm train property`` and ``molfm predict``: property models on any encoder.

The flags are the fields of :class:`~molfm.tasks.config.PropertyTrainConfig` and
:class:`~molfm.tasks.config.PredictConfig` (:mod:`molfm.cli.build`); the work is done by
:mod:`molfm.tasks.property_run` and :mod:`molfm.tasks.predict`.
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
from molfm.scale.config import EmbedConfig
from molfm.tasks.config import PredictConfig, PropertyTrainConfig

app = typer.Typer()  # molfm predict (mounted on the top-level app)
console = Console()


@config_command(train_app, "property", PropertyTrainConfig)
def train_property(cfg: PropertyTrainConfig, run: RunContext) -> None:
    """Train a property model (regression or classification) on a data set or your CSV/SDF."""
    from molfm.chem.parse import InvalidMoleculeError
    from molfm.tasks.property_run import train_property

    try:
        model_dir = train_property(cfg, callbacks=run.callbacks())
    except InvalidMoleculeError as err:  # the data's bad rows: say how to skip them
        raise invalid_input(err) from None
    report = json.loads((Path(cfg.output_dir) / "metrics.json").read_text())
    console.print(f"[bold]saved[/bold] {model_dir}", highlight=False)
    console.print(json.dumps(report["metrics"], indent=2), markup=False, highlight=False)


@config_command(app, "predict", PredictConfig, outputs=lambda cfg: [cfg.output])
def predict(cfg: PredictConfig, run: RunContext) -> None:
    """Predict properties for every molecule of a CSV, Parquet or SDF file, in input order.

    The input is read in parts (--chunk-size rows), each written as it finishes, so memory
    stays flat and a killed run resumes; --engine ray runs the parts on a Ray cluster.
    Molecules with an element or a size never seen in training are flagged in the
    out_of_domain column; unreadable rows follow --on-invalid (skip: listed in invalid.csv).
    """
    from molfm.scale.run import predict

    with _bad_rows():
        result = predict(cfg)
    run.save_config_beside(Path(cfg.output))
    console.print(f"wrote {result.rows} predictions to {cfg.output}", highlight=False)
    if result.out_of_domain:
        console.print(
            f"{result.out_of_domain} molecules are outside the training domain "
            "(see the out_of_domain and domain_reason columns)",
            highlight=False,
        )
    _report(result)


@config_command(app, "embed", EmbedConfig, outputs=lambda cfg: [cfg.output])
def embed(cfg: EmbedConfig, run: RunContext) -> None:
    """One vector per molecule from any shipped or trained encoder, to Parquet in input order.

    Graph encoders (Transformer-M 2D/3D, the 3D-PGT GPS, GINE, a property model's encoder)
    give their graph embedding, GP-MoLFormer the mean of its hidden states, MolCA its
    Q-Former's. Read in parts like predict (--chunk-size, --engine ray, resumable).
    """
    from molfm.scale.run import embed

    with _bad_rows():
        result = embed(cfg)
    run.save_config_beside(Path(cfg.output))
    console.print(f"wrote {result.rows} embeddings to {cfg.output}", highlight=False)
    _report(result)


@contextlib.contextmanager
def _bad_rows() -> Iterator[None]:
    """A bad row of the user's file: one line with the --on-invalid skip hint (the finished
    parts stay, so the same command with --on-invalid skip continues from them)."""
    from molfm.chem.parse import InvalidMoleculeError

    try:
        yield
    except InvalidMoleculeError as err:
        raise invalid_input(err) from None


def _report(result) -> None:
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
