"""`molfm generate / decorate` save their resolved config beside the CSV; given back with
--config, it reproduces the same CSV."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from molfm.cli.main import app

DATA = Path(__file__).parents[1] / "data"
TINY = str(DATA / "tiny-gp-molformer")
runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "-n", "12", "--seed", "5", "--top-k", "8", "--syntax-mask"],
        ["decorate", "--scaffold", "c1ccc(*)cc1", "-n", "6", "--seed", "2", "--top-p", "0.9"],
    ],
    ids=lambda args: args[0],
)
def test_saved_config_reproduces_the_csv(args, tmp_path):
    first = tmp_path / "first.csv"
    result = runner.invoke(app, [*args, "--model", TINY, "-o", str(first)])
    assert result.exit_code == 0, result.output
    saved = tmp_path / "first.config.yaml"
    config = yaml.safe_load(saved.read_text())
    assert config["model"] == TINY and config["output"] == str(first)
    assert config["seed"] == int(args[args.index("--seed") + 1])

    again = tmp_path / "again.csv"  # the flag wins over the saved output
    result = runner.invoke(app, [args[0], "--config", str(saved), "-o", str(again)])
    assert result.exit_code == 0, result.output
    assert again.read_bytes() == first.read_bytes()
    assert yaml.safe_load((tmp_path / "again.config.yaml").read_text()) == config | {
        "output": str(again)
    }


def test_failed_run_saves_no_config(tmp_path):
    out = tmp_path / "dec.csv"
    args = ["decorate", "--model", TINY, "--scaffold", "C1CC(*)", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "unclosed ring" in result.output
    assert not out.exists() and not (tmp_path / "dec.config.yaml").exists()
