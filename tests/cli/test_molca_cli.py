"""`molfm train molca` (stage 1 -> 2 -> finetune), `molfm name`, `molfm retrieve`, on tiny
models: a 2-layer GINE (dim 32), a 2-layer Q-Former from MiniLM, a tiny random Llama."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from molfm.cli.main import app
from molfm.systems.molca.lm import save_tiny_lm

DATA = Path(__file__).parents[1] / "data"
runner = CliRunner()
COMMON = [
    "--batch-size", "4", "--max-steps", "2", "--warmup-steps", "1", "--limit-train", "8",
    "--eval-limit", "3", "--num-beams", "2", "--max-new-tokens", "8",
    "--accelerator", "cpu", "--no-progress",
]  # fmt: skip
TINY_GRAPH = ["--graph-layers", "2", "--graph-dim", "32", "--qformer-layers", "2"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _names_csv(path: Path, n: int = 40) -> Path:
    rows = [line.rstrip("\n").split("\t") for line in open(DATA / "pubchem_names_150.tsv")]
    pairs = [(r[4], r[7]) for r in rows if len(r) > 7 and r[4] and r[7]][:n]
    frame = pd.DataFrame(pairs, columns=["smiles", "name"])
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("molca")
    lm = root / "lm"
    save_tiny_lm(lm, initializer_range=0.3)
    data = _names_csv(root / "names.csv")
    base = ["--data-path", str(data), "--text-column", "name", "--task", "iupac", *COMMON]
    out = {"root": root, "lm": lm, "data": data}
    for stage, init in (("1", None), ("2", "1"), ("finetune", "2")):
        args = ["train", "molca", "--stage", stage, "--output-dir", str(root / stage), *base]
        args += TINY_GRAPH if stage == "1" else ["--lm", str(lm), "--init", str(root / init)]
        if stage == "finetune":
            args += ["--lora-r", "4"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        out[stage] = root / stage
    return out


def test_chain_writes_models_and_metrics(runs):
    for stage in ("1", "2", "finetune"):
        run = runs[stage]
        assert (run / "model" / "config.json").exists()
        report = json.loads((run / "metrics.json").read_text())
        assert report["training"]["stage"] == stage and report["training"]["steps"] == 2
    stage1 = json.loads((runs["1"] / "metrics.json").read_text())["metrics"]
    assert 0.0 <= stage1["contrastive"]["full"]["mol2text_acc"] <= 1.0
    final = json.loads((runs["finetune"] / "metrics.json").read_text())["metrics"]
    assert final["n"] == 3 and "bleu2" in json.dumps(final["text"]).lower()
    assert 0.0 <= final["opsin"]["opsin_parse_rate"] <= 1.0
    assert len(pd.read_csv(runs["finetune"] / "test_predictions.csv")) == 3


def test_name_writes_names_in_order_and_verifies(runs):
    root = runs["root"]
    mols = root / "mols.csv"
    smiles = ["CCO", "c1ccccc1", "CC(=O)O"]
    pd.DataFrame({"smiles": smiles}).to_csv(mols, index=False)
    model = str(runs["finetune"] / "model")
    names = root / "names_out.csv"
    base = ["name", "--data-path", str(mols), "--model", model, "--num-beams", "2"]
    result = runner.invoke(app, [*base, "-o", str(names), "--accelerator", "cpu"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(names, keep_default_na=False)
    assert list(frame.columns) == ["row", "smiles", "name"]
    assert frame["smiles"].tolist() == smiles and frame["row"].tolist() == [0, 1, 2]
    verified = root / "verified.csv"
    result = runner.invoke(app, [*base, "--verify", "-o", str(verified), "--accelerator", "cpu"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(verified, keep_default_na=False)
    assert list(frame.columns) == ["row", "smiles", "name", "verified"]
    assert frame["smiles"].tolist() == smiles
    assert frame["verified"].isin([True, False]).all()


def test_retrieve_both_directions(runs):
    root = runs["root"]
    model = str(runs["1"] / "model")
    hits = root / "hits.csv"
    args = ["retrieve", "--text", "ethanol", "--data-path", str(runs["data"]), "--model", model]
    result = runner.invoke(app, [*args, "--top-k", "5", "--rerank", "8", "-o", str(hits)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(hits)
    assert len(frame) == 5 and frame["rank"].tolist() == [1, 2, 3, 4, 5]
    assert frame["score"].is_monotonic_decreasing and "smiles" in frame.columns
    texts = root / "texts.csv"
    pd.DataFrame({"text": ["ethanol", "benzene", "acetic acid", "water"]}).to_csv(
        texts, index=False
    )
    hits2 = root / "hits2.csv"
    args = ["retrieve", "--smiles", "CCO", "--data-path", str(texts), "--model", model]
    result = runner.invoke(app, [*args, "--top-k", "3", "--rerank", "0", "-o", str(hits2)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(hits2)
    assert len(frame) == 3 and frame["score"].is_monotonic_decreasing
    assert set(frame["text"]) <= {"ethanol", "benzene", "acetic acid", "water"}


def test_stage1_without_captioning_keeps_minilm_embeddings_out_of_the_checkpoint(runs):
    from safetensors import safe_open

    root = runs["root"]
    out = root / "stage1_small"
    base = ["--data-path", str(runs["data"]), "--text-column", "name", "--task", "iupac"]
    args = ["train", "molca", "--stage", "1", "--output-dir", str(out), *base, *COMMON]
    args += [*TINY_GRAPH, "--no-captioning", "--no-tune-word-embeddings", "--limit-val", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "model" / "config.json").read_text())["model_config"]
    assert config["captioning"] is False and config["tune_word_embeddings"] is False
    with safe_open(out / "model" / "model.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert keys and not any("word_embeddings" in k or "position_embeddings" in k for k in keys)
    hits = root / "hits_small.csv"
    args = ["retrieve", "--text", "ethanol", "--data-path", str(runs["data"])]
    args += ["--model", str(out / "model"), "--top-k", "3", "--rerank", "4", "-o", str(hits)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(hits)) == 3


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--stage", "3"], "--stage"),
        (["--stage", "2", "--init", "MISSING_DIR"], "MISSING_DIR"),
        (["--stage", "1", "--data-path", "MISSING.csv"], "MISSING.csv"),
    ],
)
def test_bad_options_fail_in_one_line(runs, tmp_path, extra, needle):
    out = tmp_path / "run"
    args = ["train", "molca", "--output-dir", str(out), *COMMON, *extra]
    if "--data-path" not in extra:
        args += ["--data-path", str(runs["data"]), "--text-column", "name"]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert not out.exists()


def test_name_with_a_missing_model_fails_in_one_line(runs, tmp_path):
    mols = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": ["CCO"]}).to_csv(mols, index=False)
    names = tmp_path / "names.csv"
    args = ["name", "--data-path", str(mols), "-o", str(names), "--model", str(tmp_path / "nope")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and not names.exists()
