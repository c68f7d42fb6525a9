"""The streamed runner: parts in, one output in input order, the same whatever the engine's
worker count, resumable, with --on-invalid applied to every part."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from molfm.chem.parse import InvalidMoleculeError
from molfm.scale.batches import EmbedJob, PredictJob
from molfm.scale.config import EmbedConfig
from molfm.scale.stream import parts_dir_of, run_stream
from molfm.tasks.config import PredictConfig
from molfm.tasks.predict import predict_file

MOSES = pd.read_csv("tests/data/moses_test_200.csv")["SMILES"].tolist()


@pytest.fixture()
def molecules(tmp_path):
    """60 MOSES molecules with two unreadable rows among them."""
    smiles = MOSES[:60]
    smiles[7], smiles[41] = "C1CC", "not-a-smiles"
    path = tmp_path / "in.csv"
    pd.DataFrame({"smiles": smiles, "id": [f"m{i}" for i in range(60)]}).to_csv(path, index=False)
    return path


def _predict(path, out, **options):
    cfg = PredictConfig(data_path=str(path), output=str(out), accelerator="cpu", **options)
    return cfg, run_stream(
        PredictJob(cfg),
        path,
        out,
        chunk_size=cfg.chunk_size,
        on_invalid=cfg.on_invalid,
        workers=cfg.workers,
    )


def test_predictions_equal_the_whole_file_prediction(molecules, tmp_path):
    """Parts of 16 rows (batches of 16 inside): the same values as one pass over the file."""
    _, result = _predict(
        molecules, tmp_path / "p.csv", chunk_size=16, batch_size=16, on_invalid="skip"
    )
    written = pd.read_csv(result.output, keep_default_na=False)
    from molfm.tasks.predict import load_property_model

    whole = predict_file(
        load_property_model("transformer-m-small-qm9"), molecules, on_invalid="skip", batch_size=16
    )
    assert result.rows == 58 and result.n_rejected == 2
    assert written["row"].tolist() == whole.predictions["row"].tolist()
    np.testing.assert_allclose(
        written[["homo", "lumo", "gap"]],
        whole.predictions[["homo", "lumo", "gap"]],
        rtol=0,
        atol=1e-6,
    )
    invalid = pd.read_csv(result.invalid_path)
    assert invalid["row"].tolist() == [7, 41]
    assert not parts_dir_of(result.output).exists()  # the parts are gone once joined


def test_two_worker_processes_write_what_one_process_writes(molecules, tmp_path):
    _, one = _predict(molecules, tmp_path / "one.csv", chunk_size=16, on_invalid="skip")
    _, two = _predict(molecules, tmp_path / "two.csv", chunk_size=16, on_invalid="skip", workers=2)
    assert one.output.read_bytes() == two.output.read_bytes()


class _Killed(Exception):
    pass


class DyingJob(PredictJob):
    """The same job as PredictJob (same fingerprint) whose process "dies" after two parts."""

    def build(self):
        fn, calls = super().build(), []

        def run(frame):
            if len(calls) == 2:
                raise _Killed
            calls.append(1)
            return fn(frame)

        return run


def _config(molecules, out, **options):
    return PredictConfig(
        data_path=str(molecules),
        output=str(out),
        accelerator="cpu",
        chunk_size=16,
        on_invalid="skip",
        **options,
    )


def test_a_killed_run_resumes_from_its_finished_parts(molecules, tmp_path):
    out = tmp_path / "p.csv"
    with pytest.raises(_Killed):
        run_stream(
            DyingJob(_config(molecules, out)), molecules, out, chunk_size=16, on_invalid="skip"
        )
    assert not out.exists() and len(list(parts_dir_of(out).glob("part-*"))) == 2
    resumed = run_stream(
        PredictJob(_config(molecules, out)), molecules, out, chunk_size=16, on_invalid="skip"
    )
    assert resumed.resumed_parts == 2 and resumed.parts == 4
    _, fresh = _predict(molecules, tmp_path / "fresh.csv", chunk_size=16, on_invalid="skip")
    assert out.read_bytes() == fresh.output.read_bytes()


def test_parts_of_another_run_are_not_mixed_in(molecules, tmp_path):
    out = tmp_path / "p.csv"
    with pytest.raises(_Killed):
        run_stream(
            DyingJob(_config(molecules, out)), molecules, out, chunk_size=16, on_invalid="skip"
        )
    other = PredictJob(_config(molecules, out, mode="2d"))
    with pytest.raises(ValueError, match="parts of another run"):
        run_stream(other, molecules, out, chunk_size=16, on_invalid="skip")


def test_on_invalid_error_names_the_first_bad_row_and_skip_continues(molecules, tmp_path):
    out = tmp_path / "p.csv"
    with pytest.raises(InvalidMoleculeError, match="row 7"):
        _predict(molecules, out, chunk_size=16)
    assert not out.exists()
    _, result = _predict(molecules, out, chunk_size=16, on_invalid="skip")
    assert result.resumed_parts >= 1 and result.rows == 58


def _embed(path, out, **options):
    cfg = EmbedConfig(data_path=str(path), output=str(out), accelerator="cpu", **options)
    run_stream(EmbedJob(cfg), path, out, chunk_size=cfg.chunk_size, on_invalid="skip")
    return pd.read_parquet(out)


@pytest.mark.parametrize(
    "model", ["transformer-m-small-qm9", "gps-3dpgt-small-qm9", "gp-molformer-small-moses"]
)
def test_a_molecule_gets_its_vector_whatever_its_batch(molecules, tmp_path, model):
    alone = _embed(
        molecules, tmp_path / "a.parquet", model=model, batch_size=1, chunk_size=7, id_column="id"
    )
    batched = _embed(molecules, tmp_path / "b.parquet", model=model, batch_size=32, chunk_size=60)
    assert (
        alone["row"].tolist()
        == batched["row"].tolist()
        == [i for i in range(60) if i not in (7, 41)]
    )
    assert alone["id"].tolist() == [f"m{i}" for i in alone["row"]]
    a, b = np.stack(alone["embedding"]), np.stack(batched["embedding"])
    assert a.dtype == np.float32 and a.shape[0] == 58 and np.isfinite(a).all()
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-5)


@pytest.mark.parametrize("model", ["transformer-m-small-qm9", "gps-3dpgt-small-qm9"])
def test_permuted_atoms_give_the_same_vector(tmp_path, model):
    """A molecule and its atom-permuted SDF record embed the same (graph encoders, 2D)."""
    path = tmp_path / "m.sdf"
    writer = Chem.SDWriter(str(path))
    rng = np.random.default_rng(0)
    for smiles in MOSES[:5]:
        mol = Chem.MolFromSmiles(smiles)
        order = rng.permutation(mol.GetNumAtoms()).tolist()
        writer.write(mol)
        writer.write(Chem.RenumberAtoms(mol, order))
    writer.close()
    vectors = np.stack(_embed(path, tmp_path / "e.parquet", model=model, mode="2d")["embedding"])
    np.testing.assert_allclose(vectors[0::2], vectors[1::2], rtol=0, atol=2e-5)
    assert np.abs(vectors[0] - vectors[2]).max() > 1e-2  # different molecules differ


def test_generation_shards_are_the_same_on_one_or_two_workers(tmp_path):
    from molfm.scale.run import generate
    from molfm.systems.gp_molformer.config import GenerateConfig

    outputs = []
    for workers in (1, 2):
        cfg = GenerateConfig(
            n=40,
            seed=5,
            shard_size=16,
            workers=workers,
            batch_size=16,
            output=str(tmp_path / f"g{workers}.csv"),
            accelerator="cpu",
        )
        rows, summary = generate(cfg)
        assert rows == 40 and 0 < summary["validity"] <= 1
        outputs.append((tmp_path / f"g{workers}.csv").read_bytes())
    assert outputs[0] == outputs[1]
    frame = pd.read_csv(tmp_path / "g1.csv")
    assert frame["smiles"].iloc[:16].tolist() != frame["smiles"].iloc[16:32].tolist()


def test_parallel_generation_without_shards_is_one_line(tmp_path):
    from molfm.scale.run import generate
    from molfm.systems.gp_molformer.config import GenerateConfig

    cfg = GenerateConfig(n=8, workers=2, output=str(tmp_path / "g.csv"), accelerator="cpu")
    with pytest.raises(ValueError, match="--shard-size"):
        generate(cfg)


def test_names_in_parts_equal_the_whole_file_names(tmp_path):
    """molfm name through parts of two rows: the names the in-memory path gives."""
    from molfm.scale.run import name
    from molfm.systems.molca.config import NameConfig
    from molfm.systems.molca.run import name_molecules

    data = tmp_path / "in.csv"
    pd.DataFrame({"smiles": ["CCO", "C1CC", "c1ccncc1", "CC(=O)N", "CCCl"]}).to_csv(
        data, index=False
    )
    options = dict(
        data_path=str(data),
        accelerator="cpu",
        on_invalid="skip",
        num_beams=1,
        max_new_tokens=12,
        progress=False,
    )
    parts = name(NameConfig(output=str(tmp_path / "a" / "names.csv"), chunk_size=2, **options))
    whole = name_molecules(NameConfig(output=str(tmp_path / "b" / "names.csv"), **options))
    assert parts.rows == 4 and parts.n_rejected == 1
    assert parts.output.read_bytes() == whole.path.read_bytes()
