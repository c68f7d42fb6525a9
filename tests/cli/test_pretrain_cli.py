"""`molfm pretrain 3d-pgt` end to end: SMILES + RDKit conformers -> pretrained GPS -> fine-tuned
with --init on 2D -> predict; the shipped encoder by name; bad options in one line."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from molfm.cli.main import app
from molfm.hub import from_pretrained

DATA = Path(__file__).parents[1] / "data"
runner = CliRunner()
TINY = ["--num-layers", "1", "--dim", "32", "--batch-size", "8"]
COMMON = ["--accelerator", "cpu", "--no-progress", "--warmup-steps", "1"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    frame = pd.read_csv(DATA / "qm9_100.csv").iloc[:48]
    csv = root / "qm9.csv"
    gap = frame["HOMO_LUMO_gap_au"] * 27.211386
    pd.DataFrame({"smiles": frame["SMILES"], "gap": gap}).to_csv(csv, index=False)
    return root, csv


@pytest.fixture(scope="module")
def pretrained(files):
    root, csv = files
    out = root / "pretrain"
    args = [
        "pretrain", "3d-pgt", "--data-path", str(csv), "--conformers", "--weighting", "equal",
        "--max-steps", "4", "--cache-dir", str(root / "cache"), "--output-dir", str(out),
        *COMMON, *TINY,
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_pretrain_on_conformers_then_fine_tune_on_2d_and_predict(files, pretrained):
    root, csv = files
    assert json.loads((pretrained / "metrics.json").read_text())["weighting"] == "equal"
    encoder = from_pretrained(pretrained / "model")
    out = root / "finetune"
    args = [
        "train", "property", "--model", "gps", "--init", str(pretrained), "--data-path", str(csv),
        "--target-columns", "gap", "--max-steps", "1", "--lr", "1e-12", "--batch-size", "8",
        "--cache-dir", str(root / "cache"), "--output-dir", str(out), *COMMON,
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    tuned = dict(from_pretrained(out / "model").encoder.named_parameters())
    for name, value in encoder.named_parameters():  # one step at lr 1e-12: still the init
        torch.testing.assert_close(tuned[name], value, atol=1e-6, rtol=0, msg=name)
    preds = root / "preds.csv"
    args = ["predict", "--model", str(out / "model"), "--data-path", str(csv), "-o", str(preds)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(preds)) == 48


def test_the_shipped_encoder_is_taken_by_name(files):
    root, csv = files
    out = root / "shipped"
    args = [
        "train", "property", "--model", "gps", "--init", "gps-3dpgt-small-qm9",
        "--data-path", str(csv), "--target-columns", "gap", "--max-steps", "2",
        "--batch-size", "8", "--cache-dir", str(root / "cache"), "--output-dir", str(out),
        *COMMON,
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["model_config"]["encoder_config"]["dim"] == 128  # the shipped sizes


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--weighting", "fixed"], "--weighting fixed needs --task-weights"),
        (["--task-weights", "1,0,0"], "--task-weights goes with --weighting fixed"),
        (["--weighting", "fixed", "--task-weights", "1,0"], "three non-negative numbers"),
        (["--weighting", "auto"], "--energy-column"),
        (["--weighting", "official"], "--weighting official trains on a total energy"),
        (["--weighting", "equal", "--heads", "official"], "--heads official reads edge states"),
        (["--energy-column", "u0"], "column(s) ['u0'] not found"),
    ],
)
def test_bad_options_fail_in_one_line_and_leave_nothing(files, extra, message):
    root, csv = files
    out = root / "bad"
    args = [
        "pretrain", "3d-pgt", "--data-path", str(csv), "--conformers", "--max-steps", "2",
        "--cache-dir", str(root / "cache"), "--output-dir", str(out), *COMMON, *TINY, *extra,
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output, result.output
    assert not out.exists()


def test_a_missing_file_is_one_line(tmp_path):
    args = ["pretrain", "3d-pgt", "--data-path", str(tmp_path / "none.sdf"), "--output-dir",
            str(tmp_path / "out")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code != 0 and "none.sdf" in result.output
    assert not (tmp_path / "out").exists()
