"""`molfm train property` and `molfm predict` end to end on the committed QM9 slice."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from molfm.cli.main import app

DATA = Path(__file__).parents[1] / "data"
runner = CliRunner()
TINY = ["--num-layers", "1", "--dim", "32", "--num-heads", "4", "--batch-size", "16"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("property")
    frame = pd.read_csv(DATA / "qm9_100.csv")
    csv = root / "qm9.csv"
    pd.DataFrame({"smiles": frame["SMILES"], "gap": frame["HOMO_LUMO_gap_au"] * 27.211386}).to_csv(
        csv, index=False
    )
    out = root / "run"
    args = [
        "train",
        "property",
        "--data-path",
        str(csv),
        "--target-columns",
        "gap",
        "--max-steps",
        "6",
        "--warmup-steps",
        "1",
        "--accelerator",
        "cpu",
        "--no-progress",
        "--cache-dir",
        str(root / "cache"),
        "--output-dir",
        str(out),
        *TINY,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return root, csv, out


def test_train_writes_the_run_and_predict_uses_it(trained):
    root, csv, out = trained
    report = json.loads((out / "metrics.json").read_text())
    assert report["split"] == "test" and report["n"] == 10 and "gap" in report["metrics"]
    mols = root / "mols.csv"
    pd.DataFrame({"smiles": ["CCO", "not a smiles", "c1ccncc1"]}).to_csv(mols, index=False)
    preds = root / "preds.csv"
    args = ["predict", "--model", str(out / "model"), "--data-path", str(mols), "-o", str(preds)]
    failed = runner.invoke(app, args)
    assert failed.exit_code == 1 and "row 1" in failed.output and not preds.exists()
    result = runner.invoke(app, [*args, "--on-invalid", "skip"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(preds)
    assert frame["row"].tolist() == [0, 2] and frame["gap"].notna().all()
    assert pd.read_csv(root / "invalid.csv")["row"].tolist() == [1]


def test_init_from_a_trained_model_and_its_errors(trained):
    root, csv, out = trained
    base = [
        "train",
        "property",
        "--data-path",
        str(csv),
        "--target-columns",
        "gap",
        "--max-steps",
        "2",
        "--accelerator",
        "cpu",
        "--no-progress",
        "--cache-dir",
        str(root / "cache"),
    ]
    result = runner.invoke(
        app, [*base, "--init", str(out / "model"), "--output-dir", str(root / "ft")]
    )
    assert result.exit_code == 0, result.output
    wrong = runner.invoke(
        app,
        [*base, "--model", "gine", "--init", str(out / "model"), "--output-dir", str(root / "x")],
    )
    assert wrong.exit_code == 1 and "transformer-m encoder" in wrong.output
    assert not (root / "x").exists()


def test_user_errors_are_one_line(tmp_path):
    missing = runner.invoke(app, ["train", "property", "--output-dir", str(tmp_path / "o")])
    assert missing.exit_code == 1 and "--data NAME or --data-path FILE" in missing.output
    assert not (tmp_path / "o").exists()
    gpu = runner.invoke(
        app,
        [
            "predict",
            "--data-path",
            str(DATA / "moses_test_200.csv"),
            "--accelerator",
            "gpu",
            "-o",
            str(tmp_path / "p.csv"),
        ],
    )
    assert gpu.exit_code == 1 and "no CUDA device" in gpu.output and "Traceback" not in gpu.output


def test_bad_rows_in_the_data_stop_the_run_with_a_hint(tmp_path):
    csv = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": ["CCO", "C1CC", "CCN"] * 10, "y": range(30)}).to_csv(csv, index=False)
    out = tmp_path / "run"
    args = [
        "train",
        "property",
        "--data-path",
        str(csv),
        "--target-columns",
        "y",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--output-dir",
        str(out),
        "--max-steps",
        "1",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "row 1" in result.output and "C1CC" in result.output
    assert "--on-invalid skip" in result.output and not out.exists()
