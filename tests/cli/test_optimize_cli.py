"""``molfm optimize`` end to end on the MOSES fixture with a tiny random-weight model."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from molfm.cli.main import app
from molfm.hub import save_pretrained
from molfm.systems.gp_molformer.model import GPMoLFormer, GPMoLFormerConfig
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

DATA = Path(__file__).parents[1] / "data"
SMILES = pd.read_csv(DATA / "moses_train_500.csv")["SMILES"].tolist()
runner = CliRunner()


def flat(output: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─┃━┏┓┗┛]", " ", output).split())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tokenizer = SmilesTokenizer.build(SMILES)
    config = GPMoLFormerConfig(
        vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=32, ffn_dim=32, max_length=60
    )
    path = tmp_path_factory.mktemp("lm") / "model"
    save_pretrained(GPMoLFormer(config), path, extra={"tokenizer": tokenizer.to_dict()})
    return path


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "mols.csv"
    pd.DataFrame({"smiles": SMILES[:300], "score": range(300)}).to_csv(path, index=False)
    return path


def _base(model_dir: Path, data: Path, out: Path) -> list[str]:
    return [
        "optimize", "--model", str(model_dir), "--data-path", str(data), "--n-molecules", "300",
        "--max-steps", "2", "--batch-size", "8", "--n-prompt", "3", "--n-sources", "3",
        "--n-candidates", "2", "--output-dir", str(out), "--no-progress",
    ]  # fmt: skip


def test_train_then_reuse_prompt(model_dir, data_csv, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, [*_base(model_dir, data_csv, out), "--property", "qed"])
    assert result.exit_code == 0, result.output
    for name in ("pairs.csv", "candidates.csv", "report.json", "run_config.json"):
        assert (out / name).exists(), name
    assert (out / "prompt" / "prompt.safetensors").exists()
    pairs = pd.read_csv(out / "pairs.csv")
    assert len(pairs) > 0 and (pairs["similarity"] >= 0.4).all()
    assert (pairs["target_value"] > pairs["source_value"]).all()
    report = json.loads((out / "report.json").read_text())
    assert report["n_sources"] == 3 and report["n_candidates"] == 6
    assert report["property"] == "qed" and report["n_pairs"] == len(pairs)
    candidates = pd.read_csv(out / "candidates.csv")
    held_out = set(candidates["source"])
    assert held_out.isdisjoint(set(pairs["source"]) | set(pairs["target"]))

    # reuse the prompt on an input file holding an unreadable row
    mols = tmp_path / "input.csv"
    pd.DataFrame({"smiles": [SMILES[400], "CC[Xe]", SMILES[401]]}).to_csv(mols, index=False)
    reuse = [
        "optimize",
        "--model",
        str(model_dir),
        "--prompt",
        str(out / "prompt"),
        "--input",
        str(mols),
    ]
    reuse += ["--n-candidates", "2", "--output-dir", str(tmp_path / "reuse")]
    failed = runner.invoke(app, reuse)
    assert failed.exit_code == 1 and not (tmp_path / "reuse").exists()  # nothing half-written
    assert "input row 1: 'CC[Xe]'" in flat(failed.output) and "[Xe]" in flat(failed.output)
    skipped = runner.invoke(app, [*reuse, "--on-invalid", "skip"])
    assert skipped.exit_code == 0, skipped.output
    assert "rejected 1" in skipped.output
    invalid = pd.read_csv(tmp_path / "reuse" / "invalid.csv")
    assert invalid["row"].tolist() == [1] and invalid["smiles"].tolist() == ["CC[Xe]"]
    again = pd.read_csv(tmp_path / "reuse" / "candidates.csv")
    assert sorted(set(again["source"])) == sorted([SMILES[400], SMILES[401]])


def test_user_column_property(model_dir, data_csv, tmp_path):
    result = runner.invoke(app, [*_base(model_dir, data_csv, tmp_path), "--property", "score"])
    assert result.exit_code == 0, result.output
    pairs = pd.read_csv(tmp_path / "pairs.csv")
    assert (pairs["target_value"] > pairs["source_value"]).all()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["property"] == "score"
    assert report["delta"]["0.4"]["improvement_mean"] is None  # no oracle for a user column
    candidates = pd.read_csv(tmp_path / "candidates.csv")
    assert candidates["candidate_value"].isna().all()
    table = pd.read_csv(data_csv)
    lookup = dict(zip(table["smiles"], table["score"], strict=True))
    assert (candidates["source_value"] == candidates["source"].map(lookup)).all()


def test_bad_inputs_give_clear_errors(model_dir, data_csv, tmp_path):
    base = _base(model_dir, data_csv, tmp_path)
    unknown = runner.invoke(app, [*base, "--property", "potency"])
    assert unknown.exit_code == 1 and "column(s) ['potency'] not found" in flat(unknown.output)
    out = tmp_path / "fresh"
    column = runner.invoke(app, [*_base(model_dir, data_csv, out), "--smiles-column", "SMILES"])
    assert column.exit_code == 1 and "['SMILES'] not found" in flat(column.output)
    assert not out.exists()  # no run_config.json or any other half-written output
    empty = tmp_path / "empty.csv"
    empty.write_text("smiles\n")
    no_rows = runner.invoke(app, [*base, "--input", str(empty)])
    assert no_rows.exit_code == 1 and "no data rows" in flat(no_rows.output)
    missing = runner.invoke(
        app, ["optimize", "--prompt", str(tmp_path / "nope"), "--input", str(empty)]
    )
    assert missing.exit_code == 1 and "--prompt" in flat(missing.output)
    assert "does not exist" in flat(missing.output)


def test_config_file_and_resolved_config(model_dir, data_csv, tmp_path):
    config = tmp_path / "opt.yaml"
    config.write_text(yaml.safe_dump({"property": "qed", "top-k": 5, "max_steps": 1}))
    out = tmp_path / "run"
    args = [*_base(model_dir, data_csv, out), "--config", str(config)]
    result = runner.invoke(app, args)  # --max-steps 2 on the command line wins over the file
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load((out / "resolved_config.yaml").read_text())
    assert resolved["top_k"] == 5 and resolved["max_steps"] == 2
    assert resolved["property"] == "qed" and resolved["data_path"] == str(data_csv)
    run_config = json.loads((out / "run_config.json").read_text())
    assert run_config["top_k"] == 5 and run_config["accelerator"] == "auto"
