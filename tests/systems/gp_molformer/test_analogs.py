"""Analog pretraining: the pairs, the row layout, a run that learns and resumes exactly."""

import dataclasses
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from molfm.cli.main import app
from molfm.hub import from_pretrained
from molfm.systems.gp_molformer.analogs import analog_pairs, train_analog_lm
from molfm.systems.gp_molformer.config import AnalogTrainConfig
from molfm.systems.gp_molformer.model import load_smiles_model
from molfm.systems.gp_molformer.pair_tuning.pairs import tanimoto
from molfm.systems.gp_molformer.pair_tuning.training import (
    PairDataset,
    collate_pairs,
    evaluate_pair_loss,
)
from molfm.systems.gp_molformer.task import CausalLMTask

DATA = Path(__file__).parents[2] / "data"
TINY = str(DATA / "tiny-gp-molformer")
SMILES = pd.read_csv(DATA / "moses_train_500.csv")["SMILES"].tolist()


def _config(out: Path, **kw) -> AnalogTrainConfig:
    base = dict(
        output_dir=str(out),
        base_model=TINY,
        data_path=str(DATA / "moses_train_500.csv"),
        smiles_column="SMILES",
        n_molecules=400,
        n_val_molecules=100,
        min_similarity=0.3,
        batch_size=8,
        lr=3e-3,
        warmup_steps=2,
        max_steps=14,
        val_every_n_steps=6,
        accelerator="cpu",
        progress=False,
    )
    return AnalogTrainConfig(**(base | kw))


def test_analog_pairs_are_similar_and_unordered():
    pairs = analog_pairs(SMILES[:300], min_similarity=0.3, max_pairs_per_source=None, seed=0)
    assert len(pairs) > 20
    for source, target, sim in (
        pairs[["source", "target", "similarity"]].head(50).itertuples(index=False)
    ):
        assert sim >= 0.3 and tanimoto(source, target) == pytest.approx(sim, abs=1e-6)
    keys = {frozenset(p) for p in zip(pairs["source"], pairs["target"], strict=True)}
    assert len(keys) == len(pairs)  # each similar pair once, in one direction
    again = analog_pairs(SMILES[:300], min_similarity=0.3, max_pairs_per_source=None, seed=0)
    pd.testing.assert_frame_equal(pairs, again)


def test_analog_row_positions_restart_for_the_second_molecule():
    model, tok = load_smiles_model(TINY)
    task = CausalLMTask(dataclasses.asdict(model.config))
    task.model.load_state_dict(model.state_dict())
    task.eval()
    a, b = "CCO", "c1ccccc1N"
    ids, mask, target_mask = collate_pairs(PairDataset([a], [b], tok).items, tok.pad_id)
    n_a = len(tok.encode(a))  # <bos> A <eos>
    n_b = len(tok.encode(b, add_special=False)) + 1  # B <eos>
    positions = torch.tensor([list(range(n_a)) + list(range(1, n_b + 1))])
    expected = task.model.lm_loss(task.model(ids, mask, positions=positions), ids, mask)
    with torch.no_grad():
        torch.testing.assert_close(task._loss((ids, mask, target_mask)), expected)
        # without the restart the loss differs: the layout is really used
        plain = task.model.lm_loss(task.model(ids, mask), ids, mask)
    assert not torch.isclose(plain, expected)


def _target_loss(model_dir: Path | str, pairs: pd.DataFrame) -> float:
    """Mean loss of the second molecule given the first (no prompt)."""
    model, tok = load_smiles_model(model_dir)
    model.float()
    data = PairDataset(pairs["source"].tolist(), pairs["target"].tolist(), tok)
    no_prompt = torch.zeros(0, model.config.n_embd)
    return evaluate_pair_loss(model, no_prompt, data, pad_id=tok.pad_id)


def test_cli_run_learns_analog_rows(tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "gp-molformer-analogs",
            "--output-dir",
            str(out),
            "--init",
            TINY,
            "--data-path",
            str(DATA / "moses_train_500.csv"),
            "--smiles-column",
            "SMILES",
            "--n-molecules",
            "400",
            "--n-val-molecules",
            "100",
            "--min-similarity",
            "0.3",
            "--batch-size",
            "8",
            "--lr",
            "3e-3",
            "--warmup-steps",
            "2",
            "--max-steps",
            "40",
            "--val-every-n-steps",
            "20",
            "--accelerator",
            "cpu",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "analog pairs" in result.output
    val_pairs = pd.read_csv(out / "val_pairs.csv")
    assert len(val_pairs) > 0 and (val_pairs["similarity"] >= 0.3).all()
    train_molecules = set(pd.read_csv(out / "pairs.csv")[["source", "target"]].stack())
    assert not train_molecules & set(val_pairs[["source", "target"]].stack())  # disjoint
    before = _target_loss(TINY, val_pairs)  # 1.55 nats/token
    after = _target_loss(out / "model", val_pairs)  # 1.24 after 40 steps
    assert after < 0.9 * before
    trained, tok = load_smiles_model(out / "model")
    _, base_tok = load_smiles_model(TINY)
    assert tok.to_dict() == base_tok.to_dict()  # same vocabulary as the base


def test_resumed_analog_run_matches_uninterrupted_run(tmp_path, kill_before_step):
    stop_at, killed = kill_before_step
    torch.set_num_threads(1)
    straight = train_analog_lm(_config(tmp_path / "a"))
    with pytest.raises(killed):  # killed after the step-6 checkpoint
        train_analog_lm(_config(tmp_path / "b"), callbacks=[stop_at(9)])
    other = tmp_path / "other"
    shutil.copytree(TINY, other)
    with pytest.raises(ValueError, match="base_model"):  # another base is another run
        train_analog_lm(_config(tmp_path / "b", base_model=str(other)))
    resumed = train_analog_lm(_config(tmp_path / "b"))
    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(resumed / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    base = from_pretrained(TINY).state_dict()
    assert any(not torch.equal(a[k], base[k].float()) for k in a)


def test_too_few_pairs_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="would train 0 steps: raise n_molecules"):
        train_analog_lm(_config(tmp_path / "x", n_molecules=12, min_similarity=0.95))
    # fewer molecules than one batch: refused before anything is read or written
    with pytest.raises(ValueError, match=r"6 molecules \(n_molecules\) fill no batch of 8"):
        train_analog_lm(_config(tmp_path / "y", n_molecules=6))
    assert not (tmp_path / "y").exists()


def test_settings_that_cannot_run_are_refused_before_writing(tmp_path):
    from molfm.engine.hardware import HardwareError

    for bad, match in [
        (dict(on_invalid="bogus"), "on_invalid"),
        (dict(max_steps=0), "max_steps must be >= 1"),
        (dict(precision="8-bit"), "--precision '8-bit'"),
        (dict(base_model=str(tmp_path / "nomodel")), "nomodel"),
        (dict(n_molecules=600), "fewer than n_molecules"),
    ]:
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            train_analog_lm(_config(tmp_path / "z", **bad))
        assert not (tmp_path / "z").exists()
    if not torch.cuda.is_available():
        with pytest.raises(HardwareError, match="no CUDA device"):
            train_analog_lm(_config(tmp_path / "z", accelerator="gpu"))


def test_bad_molecules_name_their_row_or_are_reported(tmp_path):
    from molfm.systems.gp_molformer.pair_tuning.steps import InvalidMoleculesError

    smiles = SMILES[:]
    smiles[3] = "C1CC(C"  # RDKit cannot parse it
    data = tmp_path / "bad.csv"
    pd.DataFrame({"SMILES": smiles}).to_csv(data, index=False)
    with pytest.raises(InvalidMoleculesError, match=r"row 3: 'C1CC\(C'"):
        train_analog_lm(
            _config(tmp_path / "err", data_path=str(data), n_molecules=500, n_val_molecules=0)
        )
    train_analog_lm(_config(tmp_path / "skip", data_path=str(data), on_invalid="skip", max_steps=2))
    invalid = pd.read_csv(tmp_path / "skip" / "invalid.csv")
    assert invalid[["row", "smiles"]].values.tolist() == [[3, "C1CC(C"]]
