"""``molfm train property`` and ``molfm predict``: property models on any encoder.

The flags are the fields of :class:`~molfm.tasks.config.PropertyTrainConfig` and
:class:`~molfm.tasks.config.PredictConfig` (:mod:`molfm.cli.build`); the work is done by
:mod:`molfm.tasks.property_run` and :mod:`molfm.tasks.predict`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from molfm.cli.build import RunContext, config_command
from molfm.cli.errors import invalid_input
from molfm.cli.train import app as train_app
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
    """Predict properties for every molecule of a CSV or SDF, in input order.

    Molecules with an element or a size never seen in training are flagged in the
    out_of_domain column; unreadable rows follow --on-invalid (skip: listed in invalid.csv).
    """
    from molfm.tasks.predict import predict

    result = predict(cfg)
    run.save_config_beside(Path(cfg.output))
    frame = result.predictions
    console.print(f"wrote {len(frame)} predictions to {cfg.output}", highlight=False)
    if frame["out_of_domain"].any():
        console.print(
            f"{int(frame['out_of_domain'].sum())} molecules are outside the training domain "
            "(see the out_of_domain and domain_reason columns)",
            highlight=False,
        )
    if result.invalid_path is not None:
        console.print(
            f"rejected {len(result.rejected)} rows, listed in {result.invalid_path}",
            highlight=False,
        )
