"""`molfm pretrain 3d-pgt`, `molfm data prepare` and `molfm evaluate` derived from their configs:
flags and --config reach the library's config, the library refuses the same values in Python,
and every command that writes output saves its resolved config."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from molfm.cli.main import app
from molfm.data.config import PrepareConfig
from molfm.data.fetch import use_cache_dir
from molfm.data.prepare import prepare
from molfm.eval.config import GenerationEvalConfig, MemorizationConfig
from molfm.systems.pgt3d import run as pgt_run
from molfm.systems.pgt3d.config import PGTPretrainConfig

DATA = Path(__file__).parents[1] / "data"
TRAIN = pd.read_csv(DATA / "moses_train_500.csv")["SMILES"].tolist()
runner = CliRunner()


@pytest.fixture
def qm9_csv(tmp_path) -> Path:
    frame = pd.read_csv(DATA / "qm9_100.csv").iloc[:24]
    path = tmp_path / "qm9.csv"
    pd.DataFrame({"smiles": frame["SMILES"]}).to_csv(path, index=False)
    return path


@pytest.fixture
def captured(monkeypatch):
    """Replace the pretraining run; record the config it receives."""
    seen = {}

    def fake(cfg, callbacks=None):
        seen["cfg"] = cfg
        model = Path(cfg.output_dir) / "model"
        model.mkdir(parents=True)
        report = {"heldout": {}, "final_task_weights": {}}
        (model.parent / "metrics.json").write_text(json.dumps(report))
        return model

    monkeypatch.setattr(pgt_run, "pretrain_3dpgt", fake)
    return seen


# --- pretrain 3d-pgt ---------------------------------------------------------------------------


def test_pretrain_flags_reach_the_library_config(tmp_path, qm9_csv, captured):
    out = tmp_path / "run"
    args = ["pretrain", "3d-pgt", "--data-path", str(qm9_csv), "--conformers", "--encoder", "gine"]
    args += ["--num-layers", "2", "--dim", "32", "--weighting", "fixed", "--task-weights", "1,0,2"]
    args += ["--search-step", "0.1", "--lr", "1e-3", "--max-steps", "5", "--seed", "3"]
    args += ["--devices", "1", "--accelerator", "cpu", "--no-progress", "--output-dir", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    expected = PGTPretrainConfig(
        output_dir=str(out), data_path=str(qm9_csv), conformers=True, encoder="gine",
        num_layers=2, dim=32, weighting="fixed", task_weights="1,0,2", search_step=0.1,
        lr=1e-3, max_steps=5, seed=3, accelerator="cpu", progress=False,
    )  # fmt: skip
    got = captured["cfg"]
    assert got == expected
    assert got.encoder_overrides == {"num_layers": 2, "dim": 32}
    assert got.data is None and got.devices == 1 and got.task_weights == [1.0, 0.0, 2.0]


def test_pretrain_config_file_and_flags(tmp_path, qm9_csv, captured):
    config = tmp_path / "pgt.yaml"
    config.write_text(f"data-path: {qm9_csv}\nweighting: equal\nmax-steps: 9\nbatch-size: 4\n")
    args = ["pretrain", "3d-pgt", "--config", str(config), "--max-steps", "11"]
    result = runner.invoke(app, [*args, "--output-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    cfg = captured["cfg"]
    assert (cfg.weighting, cfg.max_steps, cfg.batch_size) == ("equal", 11, 4)


def test_the_library_refuses_what_the_parser_refuses(tmp_path, qm9_csv):
    base = {"output_dir": str(tmp_path / "run"), "data_path": str(qm9_csv)}
    cases = [
        ({"lr": 0.0}, "lr must be > 0"),
        ({"encoder": "transformer-m"}, "expected one of gps, gine"),
        ({"search_every": 0}, "search_every must be >= 1"),
        ({"weighting": "fixed"}, "--weighting fixed needs --task-weights"),
        ({"task_weights": [1, 0, 0]}, "--task-weights goes with --weighting fixed"),
    ]
    for values, message in cases:
        with pytest.raises(ValueError, match=message):
            pgt_run.check_pretrain_config(PGTPretrainConfig(**(base | values)))
    with pytest.raises(ValueError, match="three non-negative numbers"):
        PGTPretrainConfig(**base, weighting="fixed", task_weights=[1, -1, 0])
    with pytest.raises(FileNotFoundError, match="none.sdf"):
        PGTPretrainConfig(output_dir=base["output_dir"], data_path=str(tmp_path / "none.sdf"))
    # a data set's alias resolves to its name; a file is data_path, also in Python
    assert PGTPretrainConfig(output_dir="x", data="QM9").data == "qm9"
    with pytest.raises(ValueError, match="not a registered data set"):
        PGTPretrainConfig(output_dir="x", data=str(qm9_csv))
    cfg = PGTPretrainConfig(output_dir="x", data_path=str(qm9_csv))
    assert (cfg.data, cfg.data_path) == (None, str(qm9_csv))
    # the saved list of weights reads back as text (--config of a resolved_config.yaml)
    assert PGTPretrainConfig(**base, weighting="fixed", task_weights="[1.0, 0.0, 0.0]").task_weights


def test_a_pretraining_run_saves_its_resolved_config(tmp_path, qm9_csv):
    out = tmp_path / "run"
    args = ["pretrain", "3d-pgt", "--data-path", str(qm9_csv), "--conformers", "--weighting"]
    args += ["equal", "--num-layers", "1", "--dim", "32", "--batch-size", "8", "--max-steps", "2"]
    args += ["--warmup-steps", "1", "--accelerator", "cpu", "--no-progress"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--output-dir", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((out / "resolved_config.yaml").read_text())
    assert saved["weighting"] == "equal"
    assert (saved["num_layers"], saved["dim"]) == (1, 32)
    assert "encoder_overrides" not in saved  # set from Python only: --config could not take it
    assert saved["data_path"] == str(qm9_csv) and saved["cache_dir"] == str(tmp_path / "cache")
    assert (out / "model" / "config.json").exists() and (out / "task_weights.csv").exists()
    report = json.loads((out / "metrics.json").read_text())
    assert report["weighting"] == "equal" and report["training"]["steps"] == 2


# --- data prepare -------------------------------------------------------------------------------


def _mols(tmp_path) -> Path:
    path = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": TRAIN[:20], "y": range(20)}).to_csv(path, index=False)
    return path


def test_prepare_saves_its_config_beside_the_prepared_data(tmp_path):
    path, cache = _mols(tmp_path), tmp_path / "cache"
    args = ["data", "prepare", "--data-path", str(path), "--target-columns", "y", "--limit", "12"]
    result = runner.invoke(app, [*args, "-j", "0", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    (prepared,) = (cache / "datasets").glob("csv-*")
    saved = yaml.safe_load((prepared / "resolved_config.yaml").read_text())
    assert saved["data_path"] == str(path) and saved["limit"] == 12
    assert saved["target_columns"] == ["y"] and saved["on_invalid"] == "error"
    # the saved options prepare the same data again: found in the cache
    again = runner.invoke(
        app, ["data", "prepare", "--config", str(prepared / "resolved_config.yaml")]
    )
    assert again.exit_code == 0 and "already prepared" in again.output, again.output


def test_prepare_config_in_python(tmp_path):
    path = _mols(tmp_path)
    with use_cache_dir(str(tmp_path / "cache")):
        result = prepare(PrepareConfig(data_path=str(path), limit=5))
        assert result.n_rows == 5 and not result.cached
        with pytest.raises(ValueError, match="shard_size must be >= 1"):
            prepare(PrepareConfig(data_path=str(path), shard_size=0))
        with pytest.raises(ValueError, match="give the data set once"):
            prepare(PrepareConfig(name="moses", data="qm9"))


# --- evaluate ---------------------------------------------------------------------------------


def test_memorization_saves_its_config_in_its_output_dir(tmp_path):
    samples, train = tmp_path / "samples.csv", tmp_path / "train.csv"
    pd.DataFrame({"smiles": TRAIN[:10] + TRAIN[100:110]}).to_csv(samples, index=False)
    pd.DataFrame({"smiles": TRAIN[:50]}).to_csv(train, index=False)
    out = tmp_path / "mem"
    args = ["evaluate", "memorization", str(samples), "--train-data", str(train), "-j", "0"]
    result = runner.invoke(app, [*args, "--output-dir", str(out), "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((out / "resolved_config.yaml").read_text())
    assert saved == {
        "samples": str(samples), "smiles_column": "smiles", "train_data": str(train),
        "num_workers": 0, "output_dir": str(out), "cache_dir": str(tmp_path),
    }  # fmt: skip
    assert MemorizationConfig(**saved) == MemorizationConfig(
        samples=str(samples), train_data=str(train), num_workers=0, output_dir=str(out),
        cache_dir=str(tmp_path),
    )  # fmt: skip


def test_generation_writes_its_config_beside_the_metrics(tmp_path, monkeypatch):
    from molfm.eval import generated

    def fake_metrics(smiles, **kwargs):
        return {"valid": 1.0}

    monkeypatch.setattr("molfm.eval.moses.compute_moses_metrics", fake_metrics)
    monkeypatch.setattr("molfm.eval.moses.MosesReference.load", classmethod(lambda c, s: None))
    samples = tmp_path / "samples.csv"
    pd.DataFrame({"smiles": TRAIN[:5]}).to_csv(samples, index=False)
    args = ["evaluate", "generation", str(samples), "--train-data", "none", "--accelerator", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "samples.metrics.json").read_text())
    assert metrics["n_samples"] == 5 and metrics["valid"] == 1.0
    saved = yaml.safe_load((tmp_path / "samples.metrics.config.yaml").read_text())
    assert saved["output"] == str(tmp_path / "samples.metrics.json")
    assert saved["train_data"] == "none" and saved["accelerator"] == "cpu"
    assert GenerationEvalConfig(samples=str(samples)).output == saved["output"]
    assert generated.n_jobs(0) == 1
