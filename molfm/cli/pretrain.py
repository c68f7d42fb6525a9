"""``molfm pretrain``: self-supervised pretraining of graph encoders.

``molfm pretrain 3d-pgt`` runs :func:`molfm.systems.pgt3d.run.pretrain_3dpgt`; its flags are
the fields of :class:`molfm.systems.pgt3d.config.PGTPretrainConfig`. Its ``<output-dir>`` (or
``<output-dir>/model``) is what ``molfm train property --init`` takes.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console

from molfm.cli.build import RunContext, config_command
from molfm.cli.errors import invalid_input
from molfm.systems.pgt3d.config import PGTPretrainConfig

app = typer.Typer(help="Pretrain graph encoders (3D-PGT).", no_args_is_help=True)
console = Console()


@config_command(app, "3d-pgt", PGTPretrainConfig)
def pretrain_3dpgt(cfg: PGTPretrainConfig, run: RunContext) -> None:
    """3D-PGT: pretrain a 2D encoder to predict bond lengths, angles and dihedrals."""
    from molfm.chem.parse import InvalidMoleculeError
    from molfm.systems.pgt3d.run import pretrain_3dpgt as pretrain

    try:
        model_dir = pretrain(cfg, callbacks=run.callbacks())
    except InvalidMoleculeError as err:
        raise invalid_input(err) from None
    report = json.loads((model_dir.parent / "metrics.json").read_text())
    console.print(f"[bold]saved[/bold] {model_dir}", highlight=False)
    console.print(json.dumps(report["heldout"], indent=2), markup=False, highlight=False)
    console.print(f"task weights: {report['final_task_weights']}", highlight=False)
