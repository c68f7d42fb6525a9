"""`molfm generate / decorate / evaluate` end to end with the committed tiny checkpoint."""

import json
import re
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from molfm.cli.main import app

TINY = str(Path(__file__).parents[1] / "data" / "tiny-gp-molformer")
runner = CliRunner()


def flat(output: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─┃━┏┓┗┛]", " ", output).split())


def test_generate_writes_every_sample(tmp_path):
    out = tmp_path / "gen.csv"
    result = runner.invoke(app, ["generate", "--model", TINY, "-n", "40", "-o", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, keep_default_na=False)
    assert len(frame) == 40 and set(frame.columns) >= {"smiles", "valid", "canonical_smiles"}
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["n"] == 40 and abs(summary["validity"] - frame["valid"].mean()) < 1e-9


def test_generate_syntax_mask_flag(tmp_path):
    out = tmp_path / "gen.csv"
    args = ["generate", "--model", TINY, "-n", "30", "--syntax-mask", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, keep_default_na=False)
    finished = frame.loc[~frame["truncated"], "smiles"]
    assert all(s.count("(") == s.count(")") for s in finished)


def test_decorate_reports_scaffold_retention(tmp_path):
    out = tmp_path / "dec.csv"
    args = ["decorate", "--model", TINY, "--scaffold", "c1ccc(*)cc1", "-n", "20", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, keep_default_na=False)
    assert len(frame) == 20 and frame["keeps_scaffold"].sum() <= frame["valid"].sum()
    assert "keeps_scaffold" in result.output
    args = ["decorate", "--model", TINY, "--scaffold", "c1cc[nH]c1*", "-n", "4"]
    nh = runner.invoke(app, args + ["-o", str(tmp_path / "nh.csv")])
    assert nh.exit_code == 0 and '"scaffold": "c1cc[nH]c1*"' in nh.output  # no markup eaten


def test_bad_inputs_give_clear_errors(tmp_path):
    no_point = runner.invoke(app, ["decorate", "--model", TINY, "--scaffold", "c1ccccc1"])
    assert no_point.exit_code == 1 and "no attachment point" in flat(no_point.output)
    bad = runner.invoke(app, ["decorate", "--model", TINY, "--scaffold", "C1CC(*)"])
    assert bad.exit_code == 1 and "unclosed ring" in flat(bad.output)
    unknown = runner.invoke(app, ["decorate", "--model", TINY, "--scaffold", "[Se]1C=CC(*)=C1"])
    assert unknown.exit_code == 1 and "not in the vocabulary" in flat(unknown.output)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    none = runner.invoke(app, ["decorate", "--model", TINY, "--scaffolds-file", str(empty)])
    assert none.exit_code != 0 and "non-empty" in flat(none.output)
    missing = runner.invoke(app, ["generate", "--model", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "neither a shipped model" in flat(missing.output)
    empty_csv = tmp_path / "e.csv"
    empty_csv.write_text("")
    ev = runner.invoke(app, ["evaluate", "generation", str(empty_csv), "--train-data", "none"])
    assert ev.exit_code != 0 and "is empty" in flat(ev.output)
    wrong_col = tmp_path / "w.csv"
    wrong_col.write_text("SMILES\nCCO\n")
    ev = runner.invoke(app, ["evaluate", "memorization", str(wrong_col)])
    assert ev.exit_code != 0 and "no column 'smiles'" in flat(ev.output)
