"""``molfm train``: train models (one command per model family).

Every command's flags are the fields of its run config (declared once, in the system's
``config.py``; :mod:`molfm.cli.build`). Each checks its options, its data and the hardware
before it writes anything: a bad option, a missing file or a run that would train 0 steps is one
line and exit code 1, and a run directory the command created is removed again.
``resolved_config.yaml`` (every option, flags and ``--config`` merged) is written into the run
directory when training starts.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

from molfm.cli.build import RunContext, config_command
from molfm.systems.gp_molformer.config import AnalogTrainConfig, LMTrainConfig

app = typer.Typer(help="Train models.", no_args_is_help=True)
console = Console()


def print_training(meta: dict[str, Any]) -> None:
    for key, value in sorted(meta["final_metrics"].items()):
        console.print(f"  {key}: {value:.4f}")


@config_command(app, "gp-molformer", LMTrainConfig)
def gp_molformer(cfg: LMTrainConfig, run: RunContext) -> None:
    """Pretrain a GP-MoLFormer SMILES decoder (resumes from <output-dir>/checkpoints/last.ckpt)."""
    from molfm.systems.gp_molformer.pretrain import train_causal_lm

    model_dir = train_causal_lm(cfg, callbacks=run.callbacks())
    meta = json.loads((model_dir / "config.json").read_text())["training"]
    console.print(f"[bold]saved[/bold] {model_dir}  steps {meta['steps']}", highlight=False)
    print_training(meta)


@config_command(app, "gp-molformer-analogs", AnalogTrainConfig)
def gp_molformer_analogs(cfg: AnalogTrainConfig, run: RunContext) -> None:
    """Continue training a GP-MoLFormer on analog rows '<bos> A <eos> B <eos>' (A, B similar),
    so that pair-tuning (molfm optimize --model <output-dir>/model) has a base that writes an
    analog after a molecule. Resumes from <output-dir>/checkpoints/last.ckpt."""
    from molfm.systems.gp_molformer.analogs import train_analog_lm

    model_dir = train_analog_lm(cfg, callbacks=run.callbacks())
    meta = json.loads((model_dir / "config.json").read_text())["training"]
    console.print(
        f"[bold]saved[/bold] {model_dir}  steps {meta['steps']}  "
        f"{meta['n_pairs']} analog pairs (mean similarity {meta['mean_pair_similarity']:.3f})",
        highlight=False,
    )
    print_training(meta)
