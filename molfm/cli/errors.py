"""One way for every command to fail: one line on stderr, exit code 1, nothing half-written.

Wrap a command's work in :func:`user_errors`::

    with user_errors(created=[output_dir]):
        run(...)

An error a user can cause (bad input, a missing file, an unknown name, hardware that is not
there) becomes ``error: <message>`` and exit 1, never a traceback. Paths listed in ``created``
that did not exist when the block started are removed again on failure, so a failed command
leaves no output directory or file behind. Anything else (a bug) still raises with its traceback.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from molfm.data.fetch import FetchError

__all__ = ["USER_ERRORS", "CreatedOutputs", "user_errors", "fail"]

err_console = Console(stderr=True, soft_wrap=True)

# Exceptions molfm raises for things a user can cause. Library-specific classes derive from
# ValueError/KeyError/FileNotFoundError (SourceError, InvalidMoleculeError, UnknownTokenError,
# HardwareError, FetchError), so these cover them.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    KeyError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    FetchError,  # a pinned data-set wheel that cannot be downloaded (no network) or verified
)


def _message(err: BaseException) -> str:
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        return err.args[0]  # str(KeyError) would wrap the message in quotes
    text = str(err) or type(err).__name__
    return " ".join(text.split())  # one line, however the library wrapped it


def fail(message: str, hint: str | None = None) -> typer.Exit:
    """Print ``error: message`` (and an optional hint line) and return the Exit to raise."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    if hint:
        err_console.print(escape(hint), highlight=False)
    return typer.Exit(1)


USE_SKIP = "Use --on-invalid skip to continue and collect the rejected rows in invalid.csv."


def invalid_input(err: BaseException) -> typer.Exit:
    """The one line for a bad row of the user's data (row, value, reason), with the skip hint."""
    return fail(f"invalid input: {_message(err)}", USE_SKIP)


class CreatedOutputs:
    """What :func:`user_errors` yields: the outputs it would remove on failure.

    Call :meth:`keep` once they are worth keeping whatever happens next, e.g. when training
    starts writing checkpoints: an interrupted or failed run must stay resumable, not vanish.
    """

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def keep(self) -> None:
        self.paths = []


@contextlib.contextmanager
def user_errors(
    created: Iterable[Path | None] = (), hint: str | None = None
) -> Iterator[CreatedOutputs]:
    """Turn :data:`USER_ERRORS` raised in the block into one line and exit code 1.

    Parameters
    ----------
    created
        Output files or directories the block may create; those that did not exist before it
        are deleted if it fails.
    hint
        A second line printed under the error (e.g. how to skip bad rows).
    """
    outputs = CreatedOutputs([Path(p) for p in created if p is not None and not Path(p).exists()])
    try:
        yield outputs
    except USER_ERRORS as err:
        _remove(outputs.paths)
        raise fail(_message(err), hint) from None
    except BaseException:
        _remove(outputs.paths)
        raise


def _remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink(missing_ok=True)
