"""`molfm data ...` end to end through the CLI (typer's runner, real files)."""

import re
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from molfm.cli.main import app

DATA = Path(__file__).parents[1] / "data"
runner = CliRunner()


def flat(output: str) -> str:
    """CLI output with rich's panel borders and line wrapping removed."""
    return " ".join(re.sub(r"[│╭╮╰╯─┃━┏┓┗┛]", " ", output).split())


def _csv(tmp_path) -> Path:
    smiles = pd.read_csv(DATA / "moses_train_500.csv")["SMILES"].tolist()[:40]
    smiles[7] = "C1CC"
    smiles[21] = ""
    smiles[30] = "c1cc[nH]c1C1CC"  # bracket atoms must survive rich's markup in messages
    path = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": smiles, "logS": range(40)}).to_csv(path, index=False)
    return path


def test_prepare_skip_reports_rejected_rows(tmp_path):
    path = _csv(tmp_path)
    args = ["data", "prepare", "--data-path", str(path), "--target-columns", "logS"]
    args += ["--on-invalid", "skip", "--cache-dir", str(tmp_path / "cache")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "molecules 37, rejected 3" in result.output
    invalid = next((tmp_path / "cache").glob("*/invalid.csv"))
    rows = pd.read_csv(invalid, keep_default_na=False)
    assert rows["row"].tolist() == [7, 21, 30]
    info = runner.invoke(app, ["data", "info", "csv", "--cache-dir", str(tmp_path / "cache")])
    assert info.exit_code == 0, info.output
    assert "rejected 3" in info.output and "logS" in info.output
    assert "c1cc[nH]c1C1CC" in flat(info.output)


def test_prepare_error_names_the_row(tmp_path):
    path = _csv(tmp_path)
    args = ["data", "prepare", "--data-path", str(path), "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "row 7" in flat(result.output) and "C1CC" in flat(result.output)
    assert "Traceback" not in result.output


def test_config_file_fills_unset_flags_and_flags_win(tmp_path):
    path = _csv(tmp_path)
    config = tmp_path / "prep.yaml"
    config.write_text(f"data-path: {path}\non-invalid: skip\nlimit: 5\n")
    cache = str(tmp_path / "cache")
    result = runner.invoke(app, ["data", "prepare", "--config", str(config), "--cache-dir", cache])
    assert result.exit_code == 0, result.output
    assert "rows 5," in result.output
    result = runner.invoke(
        app, ["data", "prepare", "--config", str(config), "--limit", "10", "--cache-dir", cache]
    )
    assert "rows 10," in result.output
    config.write_text("data-pth: x.csv\n")
    bad = runner.invoke(app, ["data", "prepare", "--config", str(config)])
    assert bad.exit_code != 0 and "unknown key 'data-pth'" in flat(bad.output)


def test_list_and_unknown_names(tmp_path):
    result = runner.invoke(app, ["data", "list", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0
    for name in ("moses", "qm9", "b3db", "pubchem"):
        assert name in result.output
    result = runner.invoke(app, ["data", "info", "nonexistent", "--cache-dir", str(tmp_path)])
    assert result.exit_code != 0
    missing = runner.invoke(app, ["data", "prepare", "--data-path", str(tmp_path / "no.csv")])
    assert missing.exit_code != 0 and "does not exist" in flat(missing.output)
