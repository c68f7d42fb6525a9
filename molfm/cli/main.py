"""The ``molfm`` command line: one small module per command group."""

from __future__ import annotations

import typer

from molfm import __version__
from molfm.cli import data as data_cli
from molfm.cli import evaluate as evaluate_cli
from molfm.cli import generate as generate_cli
from molfm.cli import optimize as optimize_cli
from molfm.cli import train as train_cli

app = typer.Typer(
    name="molfm",
    help="Molecular foundation models over SMILES, 2D graphs, 3D geometry and text.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(train_cli.app, name="train")
app.add_typer(evaluate_cli.app, name="evaluate")
app.command("generate")(generate_cli.generate)
app.command("decorate")(generate_cli.decorate)
app.command("optimize")(optimize_cli.optimize)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"molfm {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """molfm: train, evaluate and serve molecular foundation models."""


if __name__ == "__main__":  # pragma: no cover
    app()
