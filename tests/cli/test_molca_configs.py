"""MolCA's commands are derived from their configs (molfm.systems.molca.config): the flags fill
the library config, --config files fill what the flags leave, and name/caption/retrieve save
their resolved config beside their output. Tiny models: a 2-layer GINE (dim 32), a 2-layer
Q-Former from MiniLM, a tiny random Llama."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from molfm.cli.main import app
from molfm.systems.molca.config import MolCATrainConfig

DATA = Path(__file__).parents[1] / "data"
runner = CliRunner()
GINE = {"type": "gine", "config": {"num_layers": 2, "dim": 32}}
SMILES = ["CCO", "c1ccccc1", "CC(=O)O"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _one_line(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def captured(monkeypatch):
    """Replace the training run: keep the config the command built, write what it reads."""
    import molfm.systems.molca.run as run

    seen = {}

    def fake_train(cfg, callbacks=None):
        seen["cfg"] = cfg
        out = Path(cfg.output_dir)
        (out / "model").mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps({"metrics": {"n": 0}}))
        return out / "model"

    monkeypatch.setattr(run, "train_molca", fake_train)
    return seen


def test_train_flags_fill_the_library_config(captured, tmp_path):
    data = tmp_path / "pairs.csv"
    pd.DataFrame({"smiles": SMILES, "text": ["a", "b", "c"]}).to_csv(data, index=False)
    args = ["train", "molca", "--stage", "1", "--output-dir", str(tmp_path / "run")]
    args += ["--data-path", str(data), "--graph-layers", "2", "--graph-dim", "32"]
    args += ["--qformer-layers", "2", "--num-query-tokens", "4", "--no-captioning"]
    args += ["--no-tune-word-embeddings", "--lr", "3e-4", "--input-mode", "2d"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cfg = captured["cfg"]
    assert isinstance(cfg, MolCATrainConfig) and cfg.stage == "1" and cfg.data == str(data)
    assert cfg.graph_overrides == {"num_layers": 2, "dim": 32}
    assert cfg.qformer == {"num_layers": 2, "num_query_tokens": 4, "graph_token": True}
    assert (cfg.matching, cfg.captioning, cfg.tune_word_embeddings) == (True, False, False)
    assert (cfg.lr, cfg.input_mode, cfg.lm_tuning, cfg.devices) == (3e-4, "2d", "lora", 1)


def test_train_config_file_fills_what_the_flags_leave(captured, tmp_path):
    config = tmp_path / "molca.yaml"
    config.write_text(yaml.safe_dump({"lr": 5e-5, "max_steps": 7, "lm_tuning": "full"}))
    args = ["train", "molca", "--stage", "2", "--config", str(config)]
    args += ["--output-dir", str(tmp_path / "run"), "--data", "pubchem-names", "--max-steps", "9"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cfg = captured["cfg"]
    assert (cfg.stage, cfg.lr, cfg.max_steps, cfg.lm_tuning) == ("2", 5e-5, 9, "full")
    assert cfg.data == "pubchem-names"


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--data", "pubchem-names", "--data-path", "x.csv"], "not both"),
        ([], "--data-path"),
        (["--data", "moses"], "MolCA trains on pubchem-names"),
        (["--data", "no-such-set"], "no-such-set"),
    ],
)
def test_train_data_flags_fail_in_one_line(tmp_path, extra, needle):
    out = tmp_path / "run"
    args = ["train", "molca", "--stage", "1", "--output-dir", str(out), *extra]
    result = runner.invoke(app, [*args, "--accelerator", "cpu"])
    assert result.exit_code == 1
    assert needle in _one_line(result)
    assert not out.exists()


def test_library_config_checks_its_options(tmp_path):
    from molfm.systems.molca.run import train_molca
    from molfm.systems.molca.splits import data_file, default_task

    with pytest.raises(ValueError, match="lr must be > 0"):
        train_molca(MolCATrainConfig(output_dir=str(tmp_path / "r"), data="pubchem-names", lr=0))
    with pytest.raises(ValueError, match="stage 'x'"):
        train_molca(MolCATrainConfig(output_dir=str(tmp_path / "r"), stage="x"))
    with pytest.raises(ValueError, match="set them as fields"):
        MolCATrainConfig(output_dir="r", stage1_options={"captioning": False})
    data = tmp_path / "pairs.csv"
    data.write_text("smiles,text\nCCO,ethanol\n")
    cfg = MolCATrainConfig(output_dir="r", data_path=str(data), graph_dim=16)
    assert data_file(cfg) == str(data) and default_task(cfg) == "caption"
    assert cfg.graph_overrides == {"dim": 16} and not (tmp_path / "r").exists()
    named = MolCATrainConfig(output_dir="r", data="pubchem-names")
    assert data_file(named) is None and default_task(named) == "iupac"


# ----------------------------------------------------------------------------- inference
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny MolCA (naming/captioning) and a tiny stage-1 model (retrieval), saved."""
    from molfm.hub import save_pretrained
    from molfm.systems.molca.lm import save_tiny_lm
    from molfm.systems.molca.model import MolCA, MolCAConfig
    from molfm.systems.molca.stage1 import MolCAStage1

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("molca_models")
    save_tiny_lm(root / "lm", initializer_range=0.3)
    config = MolCAConfig(
        graph_encoder=GINE,
        qformer={"num_layers": 2, "num_query_tokens": 4},
        lm=str(root / "lm"),
        lm_tuning={"mode": "lora", "r": 4, "alpha": 8},
    )
    save_pretrained(MolCA.build(config), root / "molca")
    stage1 = MolCAStage1.build(
        graph_overrides={"num_layers": 2, "dim": 32}, qformer={"num_layers": 2}
    )
    save_pretrained(stage1, root / "stage1")
    mols = root / "mols.csv"
    pd.DataFrame({"smiles": SMILES}).to_csv(mols, index=False)
    texts = root / "texts.csv"
    pd.DataFrame({"text": ["ethanol", "benzene", "acetic acid"]}).to_csv(texts, index=False)
    return {"molca": root / "molca", "stage1": root / "stage1", "mols": mols, "texts": texts}


def _saved(output: Path) -> dict:
    path = output.with_name(output.stem + ".config.yaml")
    assert path.exists(), f"no {path.name} beside {output.name}"
    return yaml.safe_load(path.read_text())


def test_name_saves_its_resolved_config_beside_the_names(models, tmp_path):
    config = tmp_path / "name.yaml"
    config.write_text(yaml.safe_dump({"num_beams": 3, "max_new_tokens": 4}))
    out = tmp_path / "names.csv"
    args = ["name", "--data-path", str(models["mols"]), "--model", str(models["molca"])]
    args += ["--config", str(config), "--num-beams", "2", "-o", str(out), "--accelerator", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out, keep_default_na=False)["smiles"].tolist() == SMILES
    saved = _saved(out)
    assert (saved["num_beams"], saved["max_new_tokens"], saved["verify"]) == (2, 4, False)
    assert saved["model"] == str(models["molca"]) and saved["output"] == str(out)
    assert saved["data_path"] == str(models["mols"]) and saved["accelerator"] == "cpu"


def test_caption_saves_its_resolved_config_beside_the_captions(models, tmp_path):
    out = tmp_path / "captions.csv"
    args = ["caption", "--data-path", str(models["mols"]), "--model", str(models["molca"])]
    args += ["--num-beams", "1", "--max-new-tokens", "3", "-o", str(out), "--accelerator", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out).columns) == ["row", "smiles", "caption"]
    saved = _saved(out)
    assert (saved["num_beams"], saved["max_new_tokens"]) == (1, 3)


def test_caption_without_a_model_fails_in_one_line(models, tmp_path):
    out = tmp_path / "captions.csv"
    result = runner.invoke(app, ["caption", "--data-path", str(models["mols"]), "-o", str(out)])
    assert result.exit_code == 1 and "give --model" in _one_line(result)
    assert not out.exists() and not (tmp_path / "captions.config.yaml").exists()


def test_retrieve_saves_its_resolved_config_beside_the_hits(models, tmp_path):
    out = tmp_path / "hits.csv"
    args = ["retrieve", "--smiles", "CCO", "--data-path", str(models["texts"])]
    args += ["--model", str(models["stage1"]), "--top-k", "2", "--rerank", "0", "-o", str(out)]
    result = runner.invoke(app, [*args, "--accelerator", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 2
    saved = _saved(out)
    assert (saved["smiles"], saved["text"], saved["top_k"], saved["rerank"]) == (
        ["CCO"], None, 2, 0,
    )  # fmt: skip


def test_retrieve_needs_one_direction(models, tmp_path):
    out = tmp_path / "hits.csv"
    args = ["retrieve", "--data-path", str(models["texts"]), "--model", str(models["stage1"])]
    result = runner.invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 1 and "--text" in _one_line(result)
    assert not out.exists()
