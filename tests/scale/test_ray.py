"""--engine ray on a local Ray cluster of two workers: the same output as the local engine,
byte for byte (the same parts through the same batch functions)."""

from __future__ import annotations

import pandas as pd
import pytest

ray = pytest.importorskip("ray")  # molfm[scale]; CI installs it with the dev extra

from molfm.chem.parse import InvalidMoleculeError  # noqa: E402
from molfm.scale.batches import EmbedJob, PredictJob  # noqa: E402
from molfm.scale.config import EmbedConfig  # noqa: E402
from molfm.scale.stream import run_stream  # noqa: E402
from molfm.tasks.config import PredictConfig  # noqa: E402

MOSES = pd.read_csv("tests/data/moses_test_200.csv")["SMILES"].tolist()


@pytest.fixture(scope="module")
def cluster():
    # two actors and one CPU beside them for Ray Data's own tasks
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture()
def molecules(tmp_path):
    smiles = MOSES[:40]
    smiles[5] = "C1CC"
    path = tmp_path / "in.csv"
    pd.DataFrame({"smiles": smiles, "id": [f"m{i}" for i in range(40)]}).to_csv(path, index=False)
    return path


def _run(job, cfg, engine):
    return run_stream(
        job,
        cfg.data_path,
        cfg.output,
        chunk_size=cfg.chunk_size,
        on_invalid=cfg.on_invalid,
        engine=engine,
        workers=2,
    )


@pytest.mark.parametrize("kind", ["predict", "embed"])
def test_ray_writes_what_the_local_engine_writes(cluster, molecules, tmp_path, kind):
    outputs = {}
    for engine in ("local", "ray"):
        if kind == "predict":
            cfg = PredictConfig(
                data_path=str(molecules),
                output=str(tmp_path / f"{engine}.csv"),
                accelerator="cpu",
                chunk_size=8,
                on_invalid="skip",
            )
            job = PredictJob(cfg)
        else:
            cfg = EmbedConfig(
                data_path=str(molecules),
                output=str(tmp_path / f"{engine}.parquet"),
                accelerator="cpu",
                chunk_size=8,
                on_invalid="skip",
                id_column="id",
            )
            job = EmbedJob(cfg)
        result = _run(job, cfg, engine)
        assert result.rows == 39 and result.n_rejected == 1
        outputs[engine] = (result.output.read_bytes(), result.invalid_path.read_bytes())
    if kind == "predict":
        assert outputs["ray"] == outputs["local"]
    else:  # Parquet files carry no run-specific bytes either, but compare the tables
        local = pd.read_parquet(tmp_path / "local.parquet")
        remote = pd.read_parquet(tmp_path / "ray.parquet")
        pd.testing.assert_frame_equal(local, remote)
        assert outputs["ray"][1] == outputs["local"][1]


def test_a_bad_row_on_ray_is_the_same_one_line_error(cluster, molecules, tmp_path):
    cfg = PredictConfig(
        data_path=str(molecules), output=str(tmp_path / "p.csv"), accelerator="cpu", chunk_size=8
    )
    with pytest.raises(InvalidMoleculeError, match="row 5"):
        _run(PredictJob(cfg), cfg, "ray")
    assert not (tmp_path / "p.csv").exists()


def test_generation_shards_on_ray_equal_the_local_ones(cluster, tmp_path):
    from molfm.scale.run import generate
    from molfm.systems.gp_molformer.config import GenerateConfig

    files = {}
    for engine in ("local", "ray"):
        cfg = GenerateConfig(
            n=24,
            seed=2,
            shard_size=8,
            workers=2,
            engine=engine,
            batch_size=8,
            output=str(tmp_path / f"{engine}.csv"),
            accelerator="cpu",
        )
        generate(cfg)
        files[engine] = (tmp_path / f"{engine}.csv").read_bytes()
    assert files["ray"] == files["local"]


def test_prepare_on_ray_writes_the_local_cache(cluster, molecules, tmp_path):
    import pyarrow.parquet as pq

    from molfm.data.config import PrepareConfig
    from molfm.scale.run import prepare

    datasets = {}
    for engine in ("local", "ray"):
        cfg = PrepareConfig(
            data_path=str(molecules),
            shard_size=8,
            num_workers=2,
            on_invalid="skip",
            engine=engine,
            cache_dir=str(tmp_path / engine),
        )
        from molfm.data.fetch import use_cache_dir

        with use_cache_dir(cfg.cache_dir):
            result = prepare(cfg)
        assert (result.n_valid, result.n_invalid) == (39, 1)
        datasets[engine] = result.dataset.path
    shards = sorted(p.name for p in (datasets["local"] / "shards").iterdir())
    assert len(shards) == 5
    for name in shards:
        local = pq.read_table(datasets["local"] / "shards" / name)
        assert local.equals(pq.read_table(datasets["ray"] / "shards" / name))


def test_names_on_ray_equal_the_local_ones(cluster, tmp_path):
    from molfm.scale.run import name
    from molfm.systems.molca.config import NameConfig

    data = tmp_path / "in.csv"
    pd.DataFrame({"smiles": ["CCO", "c1ccncc1", "CC(=O)N", "CCCl"]}).to_csv(data, index=False)
    files = {}
    for engine in ("local", "ray"):
        cfg = NameConfig(
            data_path=str(data),
            output=str(tmp_path / engine / "names.csv"),
            accelerator="cpu",
            num_beams=1,
            max_new_tokens=12,
            chunk_size=2,
            workers=2,
            engine=engine,
            progress=False,
        )
        files[engine] = name(cfg).output.read_bytes()
    assert files["ray"] == files["local"]
