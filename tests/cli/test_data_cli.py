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
    # --cache-dir is molfm's cache root (as $MOLFM_CACHE): data sets live in <root>/datasets
    invalid = next((tmp_path / "cache" / "datasets").glob("*/invalid.csv"))
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


def test_list_shows_whole_names_when_piped_and_formats_apart(tmp_path):
    result = runner.invoke(app, ["data", "list", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "…" not in result.output  # the runner's output is not a terminal, like `| cat`
    for name in ("moses", "qm9", "b3db", "pubchem-names", "test_scaffolds", "classification"):
        assert re.search(rf"│ {name} +│", result.output), name
    rows = [line.split("│")[1].strip() for line in result.output.splitlines() if "│" in line]
    assert "csv" not in rows and "sdf" not in rows  # input formats are not data sets
    assert "Input formats" in result.output and "--data-path FILE" in result.output


def test_list_on_a_narrow_terminal_never_cuts_names(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from molfm.cli import data as data_cli

    screen = io.StringIO()
    monkeypatch.setattr(data_cli, "console", Console(file=screen, force_terminal=True, width=70))
    result = runner.invoke(app, ["data", "list", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = re.sub(r"\x1b\[[0-9;]*m", "", screen.getvalue())
    assert "…" not in text
    for name in ("pubchem-names", "test_scaffolds", "classification", "regression"):
        assert re.search(rf"(^|[\s(]){name}[\s,;]", text, re.M), (name, text)


def test_cache_dir_and_molfm_cache_mean_the_same_root(tmp_path):
    path = _csv(tmp_path)
    args = ["data", "prepare", "--data-path", str(path), "--on-invalid", "skip", "--limit", "12"]
    result = runner.invoke(app, args, env={"MOLFM_CACHE": str(tmp_path / "env")})
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "env" / "datasets").glob("csv-all-*/manifest.json"))
    listed = runner.invoke(app, ["data", "list"], env={"MOLFM_CACHE": str(tmp_path / "env")})
    info = runner.invoke(
        app, ["data", "info", "--data", "csv", "--cache-dir", str(tmp_path / "env")]
    )
    assert info.exit_code == 0 and "rows 12" in info.output
    assert listed.exit_code == 0 and "csv" not in [
        line.split("│")[1].strip() for line in listed.output.splitlines() if "│" in line
    ]


def test_num_workers_replaces_processes(tmp_path):
    path = _csv(tmp_path)
    base = ["data", "prepare", "--data-path", str(path), "--on-invalid", "skip"]
    base += ["--cache-dir", str(tmp_path / "c")]
    for flag in (["-j", "2"], ["--num-workers", "1"]):
        result = runner.invoke(app, [*base, *flag])
        assert result.exit_code == 0, result.output
    old = runner.invoke(app, [*base, "--processes", "2"])
    assert old.exit_code == 2 and "--processes" in old.output


def _one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in result.output


def test_prepare_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)  # e.g. an image
    header_only = tmp_path / "header.csv"
    header_only.write_text("smiles\n")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    cases = [
        (["--data-path", str(empty)], ["is empty"]),
        (["--data-path", str(binary)], ["not a UTF-8 text file"]),
        (["--data-path", str(header_only)], ["no data rows"]),
        (["--data-path", str(tmp_path / "no.csv")], ["no.csv does not exist"]),
        (["--data-path", str(_csv(tmp_path)), "--smiles-column", "smi"], ["'smi'", "not found"]),
        (["nonexistent"], ["'nonexistent' is not a registered data set", "moses"]),
        (["--data", "nonexistent"], ["--data 'nonexistent' is not a registered data set"]),
        (["csv"], ["file format, not a data set", "--data-path"]),
        (["moses", "--subset", "nope"], ["no subset 'nope'", "test_scaffolds"]),
        (["moses", "--data", "qm9"], ["give the data set once"]),
        ([], ["give a data set NAME"]),
        (["--data-path", str(empty), "--feature-schema", "nope"], ["unknown feature schema"]),
    ]
    for args, needles in cases:
        _one_line_error(runner.invoke(app, ["data", "prepare", *args, *cache]), *needles)
    assert not list((tmp_path / "cache").glob("datasets/*"))  # nothing half-written
    folder = runner.invoke(app, ["data", "prepare", "--data-path", str(tmp_path), *cache])
    assert folder.exit_code == 2 and "is a directory" in folder.output  # refused by the parser
    assert len(folder.output.strip().splitlines()) == 1


def test_info_errors_are_one_line(tmp_path):
    cache = ["--cache-dir", str(tmp_path)]
    _one_line_error(
        runner.invoke(app, ["data", "info", "nonexistent", *cache]), "no data set or prepared"
    )
    _one_line_error(runner.invoke(app, ["data", "info", "sdf", *cache]), "--data-path FILE")
    result = runner.invoke(app, ["data", "info", "--data", "moses", *cache])
    assert result.exit_code == 0 and "not prepared yet" in result.output


def test_list_and_unknown_names(tmp_path):
    result = runner.invoke(app, ["data", "list", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0
    for name in ("moses", "qm9", "b3db", "pubchem"):
        assert name in result.output
    result = runner.invoke(app, ["data", "info", "nonexistent", "--cache-dir", str(tmp_path)])
    assert result.exit_code != 0
    missing = runner.invoke(app, ["data", "prepare", "--data-path", str(tmp_path / "no.csv")])
    assert missing.exit_code != 0 and "does not exist" in flat(missing.output)
