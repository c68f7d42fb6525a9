"""The ``molfm`` command line: one small module per command group.

Every error a user can cause is one line on stderr and a nonzero exit: a bad option or value
(refused by the parser, exit code 2) reads ``error: Invalid value for '--top-p': ...``, and a
bad input found while running (:func:`molfm.cli.errors.user_errors`, exit code 1) reads
``error: <what is wrong>``.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer._click.exceptions import ClickException  # typer bundles its own click
from typer.core import TyperGroup
from typer.exceptions import Abort

from molfm import __version__
from molfm.cli import data as data_cli
from molfm.cli import evaluate as evaluate_cli
from molfm.cli import generate as generate_cli
from molfm.cli import molca as molca_cli
from molfm.cli import optimize as optimize_cli
from molfm.cli import pretrain as pretrain_cli
from molfm.cli import property as property_cli
from molfm.cli import serve as serve_cli
from molfm.cli import train as train_cli
from molfm.cli.errors import err_console


class OneLineErrors(TyperGroup):
    """Parser errors as one line (``error: ...``) instead of click's usage text and panel."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except ClickException as err:
            if type(err).__name__ != "NoArgsIsHelpError":  # the help is already shown
                ctx = getattr(err, "ctx", None)
                where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
                message = " ".join(err.format_message().split())
                err_console.print(
                    f"[red]error:[/red] {message}{where}", markup=True, highlight=False
                )
            sys.exit(err.exit_code)
        except Abort:
            err_console.print("[red]error:[/red] aborted", highlight=False)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="molfm",
    cls=OneLineErrors,
    help="Molecular foundation models over SMILES, 2D graphs, 3D geometry and text.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(train_cli.app, name="train")
app.add_typer(pretrain_cli.app, name="pretrain")
app.add_typer(evaluate_cli.app, name="evaluate")
app.add_typer(generate_cli.app)  # generate, decorate (no group name: top-level commands)
app.add_typer(optimize_cli.app)  # optimize
app.add_typer(property_cli.app)  # predict (train property registers on the train group)
app.add_typer(molca_cli.app)  # name, caption, retrieve (train molca registers on the train group)
app.add_typer(serve_cli.app)  # serve


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
