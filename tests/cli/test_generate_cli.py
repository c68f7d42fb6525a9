"""`molfm generate / decorate` end to end with the committed tiny checkpoint."""

import json
import re
from pathlib import Path

import pandas as pd
import yaml
from rdkit import Chem
from typer.testing import CliRunner

from molfm.cli.main import app

DATA = Path(__file__).parents[1] / "data"
TINY = str(DATA / "tiny-gp-molformer")
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
    assert len(frame) == 20
    # keeps_scaffold is exactly "valid and RDKit finds the substituted benzene", checked here
    # independently of molfm's template code
    core = Chem.MolFromSmarts("c1ccc(*)cc1")
    expected = [
        bool(c) and Chem.MolFromSmiles(c).HasSubstructMatch(core) for c in frame["canonical_smiles"]
    ]
    assert frame["keeps_scaffold"].tolist() == expected and 0 < sum(expected) < 20
    report = json.loads(result.output[result.output.index("[") :])
    assert report[0]["keeps_scaffold"] == sum(expected) / 20
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


def test_generate_novelty_uses_the_cache_dir(tmp_path):
    out, cache = tmp_path / "gen.csv", tmp_path / "cache"
    train = DATA / "moses_train_500.csv"
    args = ["generate", "--model", TINY, "-n", "10", "-o", str(out), "--cache-dir", str(cache)]
    result = runner.invoke(app, [*args, "--train-data", str(train), "-j", "0"])
    assert result.exit_code != 0 and "column(s) ['smiles'] not found" in flat(result.output)
    assert not out.exists()  # nothing written by a failed run
    csv = tmp_path / "train.csv"
    pd.read_csv(train).rename(columns={"SMILES": "smiles"}).to_csv(csv, index=False)
    result = runner.invoke(app, [*args, "--train-data", str(csv), "-j", "0"])
    assert result.exit_code == 0, result.output
    assert "novelty" in json.loads(result.output[result.output.index("{") :])
    assert list((cache / "canonical").glob("*.txt.gz"))  # cached under --cache-dir


def test_generate_config_file_and_flags_win(tmp_path):
    config = tmp_path / "gen.yaml"
    config.write_text(yaml.safe_dump({"n": 7, "seed": 3, "top-k": 5, "model": TINY}))
    out = tmp_path / "gen.csv"
    result = runner.invoke(app, ["generate", "--config", str(config), "-o", str(out)])
    assert result.exit_code == 0, result.output
    first = pd.read_csv(out, keep_default_na=False)
    assert len(first) == 7
    again = runner.invoke(app, ["generate", "--config", str(config), "-n", "4", "-o", str(out)])
    assert again.exit_code == 0, again.output
    second = pd.read_csv(out, keep_default_na=False)
    assert len(second) == 4  # the flag wins over the file
    plain = tmp_path / "plain.csv"
    args = ["generate", "--model", TINY, "-n", "4", "--seed", "3", "--top-k", "5"]
    assert runner.invoke(app, [*args, "-o", str(plain)]).exit_code == 0
    assert pd.read_csv(plain, keep_default_na=False).equals(second)  # the file's seed, top-k


def test_generate_bf16_autocast_runs(tmp_path):
    out = tmp_path / "gen.csv"
    args = ["generate", "--model", TINY, "-n", "8", "--precision", "bf16-mixed", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out, keep_default_na=False)) == 8
