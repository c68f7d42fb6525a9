"""`molfm train property` and `molfm predict` are derived from their configs: the library config
each command builds from its flags, and the resolved config predict saves beside its output."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from molfm.cli.main import app
from molfm.tasks.config import PropertyTrainConfig, encoder_mode

runner = CliRunner()


@pytest.fixture
def captured(monkeypatch):
    """Run `molfm train property` up to the library call and keep the config it was given."""
    import molfm.tasks.property_run as property_run

    configs: list[PropertyTrainConfig] = []

    def fake_train(cfg, callbacks=None):
        configs.append(cfg)
        out = Path(cfg.output_dir)
        (out / "model").mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"metrics": {}}))
        return out / "model"

    monkeypatch.setattr(property_run, "train_property", fake_train)
    return configs


def test_train_flags_become_the_library_config(captured, tmp_path):
    csv = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": ["CCO", "CCN"], "y": [1.0, 2.0]}).to_csv(csv, index=False)
    args = ["train", "property", "--data-path", str(csv), "--output-dir", str(tmp_path / "run")]
    sizes = ["--num-layers", "1", "--dim", "32", "--num-heads", "4"]
    extra = ["--target-columns", "y", "--split-sizes", "100", "10", "-1", "--devices", "2"]
    result = runner.invoke(app, [*args, *sizes, *extra])
    assert result.exit_code == 0, result.output
    cfg = captured[0]
    assert cfg.data == str(csv) and cfg.target_columns == ["y"]
    assert cfg.encoder_overrides == {"num_layers": 1, "dim": 32, "num_heads": 4}
    assert cfg.split_sizes == [100.0, 10.0, -1.0] and cfg.devices == 2
    # sampled / available: the encoder chooses its channels per molecule
    assert encoder_mode(cfg.mode) is None and encoder_mode(cfg.eval_mode) is None
    assert cfg.model == "transformer-m" and cfg.task is None and cfg.split == "random"
    result = runner.invoke(app, [*args, "--mode", "2d", "--eval-mode", "3d", "--model", "gine"])
    assert result.exit_code == 0, result.output
    cfg = captured[1]
    assert (cfg.mode, cfg.eval_mode, cfg.model, cfg.target_columns) == ("2d", "3d", "gine", [])


def test_the_shipped_recipe_is_the_cli_run(captured, tmp_path):
    from molfm.systems.transformer_m.run import shipped_config

    targets = ["--target-columns", "homo", "--target-columns", "lumo", "--target-columns", "gap"]
    args = [
        "train", "property", "--model", "transformer-m", "--data", "qm9", *targets,
        "--split-sizes", "110000", "10000", "-1", "--mode", "sampled", "--eval-mode", "available",
        "--auxiliary-weight", "0.1", "--batch-size", "64", "--lr", "5e-4",
        "--warmup-steps", "500", "--max-steps", "25842", "--val-every-n-steps", "2584",
        "--on-invalid", "skip", "--accelerator", "cpu", "--output-dir", str(tmp_path / "run"),
    ]  # fmt: skip
    result = runner.invoke(app, args, env={"MOLFM_CACHE": None})
    assert result.exit_code == 0, result.output
    assert captured[0] == shipped_config(tmp_path / "run")


def test_predict_saves_its_resolved_config_beside_the_output(tmp_path):
    mols = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": ["CCO", "c1ccncc1"]}).to_csv(mols, index=False)
    out = tmp_path / "preds.csv"
    args = ["predict", "--data-path", str(mols), "-o", str(out), "--mode", "2d"]
    result = runner.invoke(app, [*args, "--accelerator", "cpu", "-j", "0"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((tmp_path / "preds.config.yaml").read_text())
    assert saved["model"] == "transformer-m-small-qm9" and saved["data_path"] == str(mols)
    assert saved["output"] == str(out) and saved["mode"] == "2d" and saved["num_workers"] == 0
    assert len(pd.read_csv(out)) == 2
    # the saved config runs the same command again (a required flag is still given as one)
    again = tmp_path / "again.csv"
    config = ["--config", str(tmp_path / "preds.config.yaml")]
    result = runner.invoke(app, ["predict", *config, "--data-path", str(mols), "-o", str(again)])
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_csv(again), pd.read_csv(out))
    assert yaml.safe_load((tmp_path / "again.config.yaml").read_text())["mode"] == "2d"


def test_a_failed_predict_leaves_no_config(tmp_path):
    out = tmp_path / "preds.csv"
    result = runner.invoke(
        app, ["predict", "--data-path", str(tmp_path / "no.csv"), "-o", str(out)]
    )
    assert result.exit_code == 1 and "does not exist" in result.output
    assert not out.exists() and not (tmp_path / "preds.config.yaml").exists()


def test_target_columns_take_commas_as_well_as_repeated_flags(tmp_path):
    from molfm.tasks.config import PropertyTrainConfig

    csv = tmp_path / "mols.csv"
    csv.write_text("smiles,a,b,c\nCCO,1,2,3\n")
    common = dict(output_dir=str(tmp_path / "run"), data_path=str(csv))
    repeated = PropertyTrainConfig(**common, target_columns=["a", "b", "c"])
    commas = PropertyTrainConfig(**common, target_columns=["a,b", "c"])
    assert repeated.target_columns == commas.target_columns == ["a", "b", "c"]
