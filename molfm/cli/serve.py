"""``molfm serve``: the models over HTTP until stopped (flags: the fields of
:class:`~molfm.serve.config.ServeConfig`; the server: :func:`molfm.serve.app.serve`)."""

from __future__ import annotations

import typer

from molfm.cli.build import RunContext, config_command
from molfm.cli.errors import fail
from molfm.serve.config import ServeConfig

app = typer.Typer()  # serve joins molfm's top level (molfm.cli.main)


@config_command(app, "serve", ServeConfig, outputs=lambda cfg: [])
def serve(cfg: ServeConfig, run: RunContext) -> None:
    """Serve models over HTTP (JSON under /v1, a page at /) until stopped; see docs/serve.md."""
    try:
        from molfm.serve.app import serve as run_server
    except ModuleNotFoundError as err:  # fastapi / uvicorn: the serve extra
        raise fail(f"molfm serve needs {err.name}", "pip install 'molfm[serve]'") from None
    run_server(cfg)
