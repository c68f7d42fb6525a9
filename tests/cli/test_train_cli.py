"""`molfm train gp-molformer` / `gp-molformer-analogs` through the CLI: flags and --config
reach the library's config, and every user error is one line, a nonzero exit, no traceback
and no run directory left behind."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from molfm.cli.main import app
from molfm.systems.gp_molformer import analogs, pretrain

DATA = Path(__file__).parents[1] / "data"
MOSES = DATA / "moses_train_500.csv"
TINY_MODEL = DATA / "tiny-gp-molformer"
runner = CliRunner()

TINY = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--ffn-dim", "16"]
FAST = ["--max-length", "80", "--val-size", "8", "--accelerator", "cpu", "--no-progress"]


def _train(out: Path, *args: str, env: dict | None = None):
    argv = ["train", "gp-molformer", "--output-dir", str(out), *args]
    return runner.invoke(app, argv, env=env)


def _one_line_error(result, *needles: str) -> None:
    """Exit 1, exactly one line (``error: ...``) naming every needle, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in result.output


def _parser_error(result, *needles: str) -> None:
    """The parser refuses an option: one line, usage-error exit code 2, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in result.output


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """Replace the library's training function; record the config (and cache) it receives."""
    seen = {}

    def fake(cfg, callbacks=None):
        seen["cfg"] = cfg
        seen["cache"] = os.environ.get("MOLFM_CACHE")
        model = Path(cfg.output_dir) / "model"
        model.mkdir(parents=True)
        training = {"steps": 0, "final_metrics": {}, "n_pairs": 0, "mean_pair_similarity": 0.0}
        (model / "config.json").write_text(json.dumps({"training": training}))
        return model

    monkeypatch.setattr(pretrain, "train_causal_lm", fake)
    monkeypatch.setattr(analogs, "train_analog_lm", fake)
    return seen


# --- flags and --config -> the library's config ----------------------------------------------


def test_flags_reach_the_training_config(tmp_path, captured):
    args = ["--data-path", str(MOSES), "--smiles-column", "SMILES", *TINY, "--dropout", "0"]
    args += ["--preset", "paper", "--batch-size", "16", "--lr", "1e-3", "--max-steps", "7"]
    args += ["--limit-train", "100", "--seed", "3", "--data-seed", "4", "-j", "2"]
    args += ["--on-invalid", "skip", "--devices", "1", "--precision", "bf16-mixed"]
    result = _train(tmp_path / "run", *args, "--accelerator", "cpu", "--no-progress")
    assert result.exit_code == 0, result.output
    cfg = captured["cfg"]
    assert cfg.data == str(MOSES) and cfg.smiles_column == "SMILES"
    assert cfg.preset == "paper"
    assert cfg.model_overrides == {
        "n_layer": 1,
        "n_embd": 16,
        "n_head": 2,
        "ffn_dim": 16,
        "dropout": 0.0,
    }
    assert (cfg.batch_size, cfg.lr, cfg.max_steps, cfg.limit_train) == (16, 1e-3, 7, 100)
    assert (cfg.seed, cfg.data_seed, cfg.num_workers) == (3, 4, 2)
    assert (cfg.on_invalid, cfg.accelerator, cfg.devices, cfg.precision) == (
        "skip",
        "cpu",
        1,
        "bf16-mixed",
    )
    assert cfg.progress is False and cfg.val_data is None
    assert type(cfg.on_invalid) is str and type(cfg.preset) is str  # JSON-clean for the guard


def test_defaults_train_on_moses_and_cache_dir_is_honoured(tmp_path, captured):
    cache = tmp_path / "cache"
    result = _train(tmp_path / "run", "--cache-dir", str(cache))
    assert result.exit_code == 0, result.output
    cfg = captured["cfg"]
    assert cfg.data == "moses" and cfg.preset == "small" and cfg.model_overrides == {}
    assert cfg.on_invalid == "error" and cfg.accelerator == "auto"
    assert captured["cache"] == str(cache)  # data loading sees the flag's cache root
    result = _train(tmp_path / "run2", "--data", "MOSES", env={"MOLFM_CACHE": str(cache)})
    assert result.exit_code == 0, result.output
    assert captured["cfg"].data == "moses" and captured["cache"] == str(cache)


def test_config_file_fills_unset_flags_and_flags_win(tmp_path, captured):
    config = tmp_path / "train.yaml"
    config.write_text(
        f"data-path: {MOSES}\nsmiles_column: SMILES\nlr: 1e-3\nbatch-size: 16\n"
        "n-layer: 2\nn-head: 2\nn-embd: 32\non-invalid: skip\npreset: paper\nmax-steps: 9\n"
    )
    result = _train(
        tmp_path / "run", "--config", str(config), "--batch-size", "8", "--n-layer", "1"
    )
    assert result.exit_code == 0, result.output
    cfg = captured["cfg"]
    assert cfg.lr == 1e-3 and isinstance(cfg.lr, float)  # YAML reads 1e-3 as text: typed here
    assert cfg.batch_size == 8  # the flag wins over the file
    assert cfg.model_overrides == {
        "n_layer": 1,
        "n_head": 2,
        "n_embd": 32,
    }  # overrides merge per key
    assert (cfg.on_invalid, cfg.preset, cfg.max_steps) == ("skip", "paper", 9)
    assert cfg.data == str(MOSES) and cfg.smiles_column == "SMILES"


def test_analogs_flags_reach_the_config(tmp_path, captured):
    out = tmp_path / "run"
    args = ["train", "gp-molformer-analogs", "--output-dir", str(out), "--init", str(TINY_MODEL)]
    args += ["--data-path", str(MOSES), "--smiles-column", "SMILES", "--n-molecules", "300"]
    args += ["--min-similarity", "0.3", "--on-invalid", "skip", "-j", "1", "--batch-size", "8"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cfg = captured["cfg"]
    assert (cfg.base_model, cfg.data, cfg.smiles_column) == (str(TINY_MODEL), str(MOSES), "SMILES")
    assert (cfg.n_molecules, cfg.min_similarity, cfg.on_invalid) == (300, 0.3, "skip")
    assert (cfg.num_workers, cfg.batch_size) == (1, 8)
    args[3] = str(tmp_path / "run2")
    old_flag = runner.invoke(app, [*args[:4], "--base-model", "other", *args[6:]])
    assert old_flag.exit_code == 0 and captured["cfg"].base_model == "other"


def test_tiny_run_saves_its_resolved_config_and_refuses_another_run_there(tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "run"
    config = tmp_path / "train.yaml"
    config.write_text("warmup-steps: 1\nval-every-n-steps: 2\n")
    args = ["--data-path", str(MOSES), "--smiles-column", "SMILES", *TINY, *FAST]
    args += ["--max-steps", "2", "--batch-size", "8", "--config", str(config)]
    result = _train(out, *args)
    assert result.exit_code == 0, result.output
    assert "steps 2" in result.output
    resolved = yaml.safe_load((out / "resolved_config.yaml").read_text())
    assert resolved["data_path"] == str(MOSES) and resolved["warmup_steps"] == 1
    assert resolved["n_layer"] == 1 and resolved["on_invalid"] == "error"
    stored = json.loads((out / "train_config.json").read_text())
    assert stored["model_overrides"] == {"n_layer": 1, "n_embd": 16, "n_head": 2, "ffn_dim": 16}
    assert json.loads((out / "model" / "config.json").read_text())["training"]["steps"] == 2
    # other settings in the same directory: refused in one line, the run left as it was
    before = (out / "resolved_config.yaml").read_text()
    again = _train(out, *args, "--lr", "1e-2")
    _one_line_error(again, "lr: 0.0003 -> 0.01")
    assert (out / "checkpoints" / "last.ckpt").exists()
    assert (out / "resolved_config.yaml").read_text() == before


def test_interrupted_run_keeps_its_directory(tmp_path, monkeypatch, kill_before_step):
    """Once training has started, a failure must leave the run there to be resumed."""
    stop_at, killed = kill_before_step
    real = pretrain.train_causal_lm
    monkeypatch.setattr(
        pretrain, "train_causal_lm", lambda cfg, callbacks=(): real(cfg, [*callbacks, stop_at(1)])
    )
    out = tmp_path / "run"
    args = ["--data-path", str(MOSES), "--smiles-column", "SMILES", *TINY, *FAST]
    result = _train(out, *args, "--max-steps", "3", "--batch-size", "8")
    assert isinstance(result.exception, killed)
    assert (out / "train_config.json").exists() and (out / "resolved_config.yaml").exists()


# --- each user error: one line, exit != 0, no traceback, no run directory --------------------


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--data", "missing.csv"], ["'missing.csv' is not a registered data set", "--data-path"]),
        (["--data-path", "missing.csv"], ["missing.csv does not exist"]),
        (["--data", "moses", "--data-path", str(MOSES)], ["not both"]),
        (["--data", "csv"], ["file format, not a data set"]),
        # fewer training molecules than one batch: 0 steps would be trained
        (
            ["--data-path", str(MOSES), "--limit-train", "10", "--batch-size", "16"],
            ["10 training molecules", "batch of 16", "0 steps"],
        ),
        (["--data-path", str(MOSES), "--n-head", "3"], ["n_head=3"]),
        (["--data-path", str(MOSES), "--devices", "two"], ["--devices 'two'"]),
        (["--data-path", str(MOSES), "--precision", "8-bit"], ["--precision '8-bit'"]),
        (["--data-path", str(MOSES), "--smiles-column", "smi"], ["'smi'", "not found"]),
    ],
)
def test_user_errors_are_one_line_and_leave_nothing(tmp_path, args, needles):
    out = tmp_path / "run"
    result = _train(out, "--smiles-column", "SMILES", *TINY, *FAST, *args)
    _one_line_error(result, *needles)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_gpu_on_a_cpu_machine_is_one_line(tmp_path, accelerator):
    out = tmp_path / "run"
    args = ["--data-path", str(MOSES), *TINY]
    result = _train(out, *args, "--accelerator", accelerator)
    _one_line_error(result, f"--accelerator {accelerator}", "no CUDA device")
    assert not out.exists()


def test_bad_row_after_the_run_directory_was_made_removes_it(tmp_path):
    smiles = pd.read_csv(MOSES)["SMILES"].tolist()[:100]
    smiles[:20] = ["C" * 120] * 20  # longer than --max-length 80: the tokenizer rejects them
    data = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": smiles}).to_csv(data, index=False)
    out = tmp_path / "run"
    args = ["--data-path", str(data), *TINY, *FAST, "--batch-size", "8", "--max-steps", "2"]
    _one_line_error(_train(out, *args), "122 tokens exceed max_length 80")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--on-invalid", "bogus"], ["--on-invalid", "'bogus' is not one of"]),
        (["--preset", "huge"], ["--preset", "'huge' is not one of"]),
        (["--max-steps", "0"], ["--max-steps", "greater than or equal to 1"]),
        (["--lr", "0"], ["--lr", "is not > 0"]),
        (["--batch-size", "0"], ["--batch-size"]),
        (["--accelerator", "tpu"], ["--accelerator", "'tpu' is not one of"]),
    ],
)
def test_bad_options_are_refused_by_the_parser(tmp_path, args, needles):
    out = tmp_path / "run"
    _parser_error(_train(out, "--data-path", str(MOSES), *args), *needles)
    assert not out.exists()


def test_bad_values_in_the_config_file_are_refused(tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "bad.yaml"
    for text, needle in [
        ("on-invalid: bogus\n", "'bogus' is not one of"),
        ("preset: huge\n", "'huge' is not one of"),
        ("max-steps: 0\n", "max-steps"),
        ("lr: fast\n", "lr"),
        ("limit-trian: 3\n", "unknown key 'limit-trian'"),
    ]:
        config.write_text(text)
        result = _train(out, "--data-path", str(MOSES), "--config", str(config))
        _parser_error(result, needle)
        assert not out.exists()


def test_analogs_user_errors_are_one_line_and_leave_nothing(tmp_path):
    out = tmp_path / "run"
    base = ["train", "gp-molformer-analogs", "--output-dir", str(out), "--accelerator", "cpu"]
    base += ["--smiles-column", "SMILES", "--batch-size", "8", "--no-progress"]
    cases = [
        (["--data", "missing.csv"], ["not a registered data set"]),
        (["--data-path", str(MOSES), "--init", str(tmp_path / "nomodel")], ["nomodel"]),
        (
            ["--data-path", str(MOSES), "--init", str(TINY_MODEL), "--n-molecules", "4"],
            ["4 molecules (n_molecules)", "batch of 8", "0 steps"],
        ),
        # pairs are mined (and written) first, then too few of them: 0 steps, nothing left
        (
            [
                "--data-path",
                str(MOSES),
                "--init",
                str(TINY_MODEL),
                "--n-molecules",
                "12",
                "--n-val-molecules",
                "0",
                "--min-similarity",
                "0.9",
            ],
            ["0 steps", "raise n_molecules"],
        ),
        (
            ["--data-path", str(MOSES), "--init", str(TINY_MODEL), "--n-molecules", "600"],
            ["fewer than n_molecules"],
        ),
    ]
    for args, needles in cases:
        _one_line_error(runner.invoke(app, [*base, *args]), *needles)
        assert not out.exists()
    result = runner.invoke(app, [*base, "--data-path", str(MOSES), "--on-invalid", "bogus"])
    _parser_error(result, "'bogus' is not one of")
