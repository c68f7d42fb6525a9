"""`molfm evaluate generation / memorization` end to end on the committed MOSES fixtures.

The MOSES reference statistics come from the fixtures (``MosesReference.from_smiles`` of 200
test / scaffold-test molecules) instead of the 51 MB molsets wheel, and the training set is the
500-molecule fixture, cached under ``--cache-dir``: the tests stay fast and offline.
"""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from molfm.chem.parse import canonical_smiles
from molfm.cli.main import app
from molfm.eval.moses import MosesReference

DATA = Path(__file__).parents[1] / "data"
TEST = pd.read_csv(DATA / "moses_test_200.csv")["SMILES"].tolist()
TRAIN = pd.read_csv(DATA / "moses_train_500.csv")["SMILES"].tolist()
runner = CliRunner()


def flat(output: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─┃━┏┓┗┛┡┩╇┳┻╋]", " ", output).split())


@pytest.fixture(scope="module")
def references() -> dict[str, MosesReference]:
    torch.set_num_threads(1)
    return {
        "test": MosesReference.from_smiles(TEST),
        "test_scaffolds": MosesReference.from_smiles(
            pd.read_csv(DATA / "moses_test_scaffolds_200.csv")["SMILES"].tolist()
        ),
    }


@pytest.fixture
def fixture_references(references, monkeypatch):
    monkeypatch.setattr(MosesReference, "load", classmethod(lambda cls, subset: references[subset]))


@pytest.fixture
def train_csv(tmp_path) -> Path:
    path = tmp_path / "train.csv"
    pd.DataFrame({"smiles": TRAIN}).to_csv(path, index=False)
    return path


def test_generation_metrics_mark_unique_at_k(fixture_references, train_csv, tmp_path):
    samples = tmp_path / "samples.csv"
    smiles = TEST[:40] + TRAIN[:10] + ["C1CC", "c1cccc1", TEST[0]]  # 2 invalid, 1 repeat
    pd.DataFrame({"smiles": smiles}).to_csv(samples, index=False)
    out, cache = tmp_path / "metrics.json", tmp_path / "cache"
    args = ["evaluate", "generation", str(samples), "--train-data", str(train_csv), "-j", "0"]
    result = runner.invoke(app, [*args, "-o", str(out), "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["n_samples"] == 53 and metrics["valid"] == pytest.approx(51 / 53)
    assert metrics["unique@1000"] == pytest.approx(50 / 51)  # MOSES's value, kept
    assert metrics["Novelty"] == pytest.approx(40 / 50)  # the 10 train molecules are not novel
    assert metrics["invalid/syntax"] + metrics["invalid/kekulization"] == 2
    text = flat(result.output)
    # the warning is one plain line; the row is marked
    assert "UserWarning" not in result.output and ".py:" not in result.output
    assert "warning: unique@10000 is computed on the 51 valid molecules" in text
    assert "unique@10000 0.9804 (51 < 10000)" in text
    assert list((cache / "canonical").glob("*.txt.gz"))  # the training set, under --cache-dir


def test_memorization_curve(train_csv, tmp_path):
    samples = tmp_path / "samples.csv"
    pd.DataFrame({"SMILES": TRAIN[:30] + TEST[:30]}).to_csv(samples, index=False)
    out = tmp_path / "mem"
    args = ["evaluate", "memorization", str(samples), "--smiles-column", "SMILES"]
    args += ["--train-data", str(train_csv), "--output-dir", str(out), "-j", "0"]
    result = runner.invoke(app, [*args, "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    curve = pd.read_csv(out / "memorization.csv")
    assert (out / "memorization.png").stat().st_size > 0
    train = {canonical_smiles(s) for s in TRAIN}
    unique = {canonical_smiles(s) for s in TRAIN[:30] + TEST[:30]}
    last = curve.iloc[-1]
    assert last["n"] == 60 and last["n_unique"] == len(unique)
    assert last["memorized"] == pytest.approx(len(unique & train) / len(unique))
    assert f"memorized {last['memorized']:.4f}" in result.output


def test_bad_inputs_give_one_line(tmp_path):
    empty = tmp_path / "e.csv"
    empty.write_text("")
    out = tmp_path / "m.json"
    cases = [
        (["generation", str(empty), "--train-data", "none", "-o", str(out)], "is empty"),
        (["generation", str(tmp_path / "nope.csv"), "-o", str(out)], "does not exist"),
        (["generation", str(empty), "--reference", "guacamol", "-o", str(out)], "--reference"),
    ]
    wrong_col = tmp_path / "w.csv"
    wrong_col.write_text("SMILES\nCCO\n")
    header_only = tmp_path / "h.csv"
    header_only.write_text("smiles\n")
    mem = tmp_path / "mem"
    cases += [
        (["memorization", str(wrong_col), "--output-dir", str(mem)], "no column 'smiles'"),
        (["memorization", str(header_only), "--output-dir", str(mem)], "no data rows"),
        (
            ["memorization", str(wrong_col), "--smiles-column", "SMILES", "--train-data",
             str(tmp_path / "nope.csv"), "--output-dir", str(mem)],
            "neither a data set",
        ),
    ]  # fmt: skip
    for args, message in cases:
        result = runner.invoke(app, ["evaluate", *args])
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("error:") and message in flat(result.output), args
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert not out.exists() and not mem.exists()  # nothing half-written
