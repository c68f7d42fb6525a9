"""``molfm optimize``: pair-tune a soft prompt for a property and optimize molecules with it.

Flags are the fields of :class:`~molfm.systems.gp_molformer.config.PairTuningConfig`; the run
is :func:`molfm.systems.gp_molformer.run.optimize`. Every error a user can cause is one line and
exit code 1, and an output directory the command created is removed again when the run fails.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape

from molfm.cli.build import RunContext, config_command
from molfm.systems.gp_molformer.config import PairTuningConfig

app = typer.Typer()  # its command joins molfm's top level (molfm.cli.main)
console = Console()

__all__ = ["optimize"]


@config_command(app, "optimize", PairTuningConfig)
def optimize(cfg: PairTuningConfig, run: RunContext) -> None:
    """Pair-tune GP-MoLFormer: learn a soft prompt from pairs of similar molecules whose
    target has the better property, then generate improved, similar molecules.

    Writes pairs.csv, prompt/, candidates.csv, report.json, run_config.json,
    resolved_config.yaml (and invalid.csv) to --output-dir.
    """
    from molfm.systems.gp_molformer.run import optimize as optimize_run  # heavy: lazy

    result = optimize_run(cfg, log=lambda text: console.print(escape(str(text)), highlight=False))
    run.save_config()
    if result["n_invalid"]:
        console.print(f"rejected {result['n_invalid']} molecules, listed in invalid.csv")
    report = {k: v for k, v in result["report"].items() if k != "training"}
    console.print(json.dumps(report, indent=2), markup=False, highlight=False)
    console.print(f"outputs in {escape(str(cfg.output_dir))}", highlight=False)
