"""``molfm data prepare``: featurize a source once into the parquet cache.

Rows are cut into shards of ``shard_size`` input rows. Each shard is featurized on its own
(in-process or in a worker process) and written atomically together with its rejected rows,
so a killed run leaves only whole shards behind and a rerun continues where it stopped.
The manifest is written last; it marks the dataset complete.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from molfm import __version__
from molfm.atomic import TMP_PREFIX, atomic_write_text, atomic_writer
from molfm.chem.conformers import ConformerOptions, generate_conformer
from molfm.chem.featurize import FEATURIZE_BLOCK, OGB_SCHEMA, FeatureSchema, featurize
from molfm.chem.parse import InvalidMoleculeError, StandardizeOptions, canonical_smiles
from molfm.chem.scaffolds import murcko_scaffold
from molfm.data.cache import (
    MANIFEST_NAME,
    PreparedDataset,
    atomic_write_table,
    dataset_dir,
    dataset_key,
)
from molfm.data.config import PrepareConfig

__all__ = [
    "prepare_dataset",
    "prepare",
    "PrepareResult",
    "featurize_frame",
    "run_shard",
    "OnInvalid",
    "ShardEngine",
]

OnInvalid = Literal["error", "skip"]
INVALID_SCHEMA = pa.schema([("row", pa.int64()), ("smiles", pa.string()), ("reason", pa.string())])


@dataclass
class PrepareResult:
    """What :func:`prepare_dataset` did."""

    dataset: PreparedDataset
    n_rows: int
    n_valid: int
    n_invalid: int
    cached: bool  # True when the complete dataset was already there

    @property
    def invalid_csv(self) -> Path:
        return self.dataset.invalid_csv


def _cell_to_str(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _list_column(arrays: list[np.ndarray], dtype: pa.DataType) -> pa.Array:
    """Flattened list column from per-molecule arrays, built without Python-level loops."""
    lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate([a.ravel() for a in arrays]) if arrays else np.empty(0)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=dtype))


def featurize_frame(
    source: Any,
    frame: pd.DataFrame,
    *,
    schema: FeatureSchema = OGB_SCHEMA,
    standardize: StandardizeOptions | None = None,
    max_heavy_atoms: int | None = None,
    carry_columns: Iterable[str] = (),
    conformers: ConformerOptions | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Featurize the records of ``frame`` (index = source row number).

    With ``conformers``, a record whose source has no coordinates gets an RDKit conformer
    (:func:`~molfm.chem.conformers.generate_conformer`); a molecule that cannot be embedded is
    rejected with the reason, like any other bad row.

    Returns
    -------
    (graphs, invalid)
        ``graphs`` has one row per accepted molecule: row, smiles, canonical_smiles, scaffold,
        the carried columns, and the flattened graph columns; ``invalid`` has row, smiles and
        the reason for every rejected record. Every input row is in exactly one of the two.
    """
    carry_columns = [c for c in carry_columns if c in frame.columns]
    rows, smiles, canonical, scaffolds, kept = [], [], [], [], []
    n_nodes, n_edges, xs, edges, eattrs, positions = [], [], [], [], [], []
    has_pos = False
    bad: list[tuple[int, int, str, str]] = []  # (position, row, smiles, reason)

    def reject(position: int, row: int, raw: str, err: Exception) -> None:
        if isinstance(err, InvalidMoleculeError):
            bad.append((position, row, raw, err.reason))
        else:  # an RDKit corner we did not anticipate: report, don't crash
            bad.append((position, row, raw, f"unexpected {type(err).__name__}: {err}"))

    records = list(enumerate(zip(frame.index, frame.to_dict("records"))))
    for start in range(0, len(records), FEATURIZE_BLOCK):
        built = []  # a block's molecules are built, then featurized (see FEATURIZE_BLOCK)
        for position, (row, record) in records[start : start + FEATURIZE_BLOCK]:
            row = int(row)
            raw = _cell_to_str(record.get("smiles"))
            try:
                mol, pos = source.build_mol(record, row=row, standardize=standardize)
                if max_heavy_atoms is not None and mol.GetNumAtoms() > max_heavy_atoms:
                    reason = f"{mol.GetNumAtoms()} heavy atoms exceed the limit {max_heavy_atoms}"
                    raise InvalidMoleculeError(raw, reason, row=row)
                if pos is None and conformers is not None:
                    pos = generate_conformer(mol, conformers)
            except Exception as err:
                reject(position, row, raw, err)
                continue
            built.append((position, row, raw, mol, pos))
        for position, row, raw, mol, pos in built:
            try:
                graph = featurize(mol, schema)
                scaffold = murcko_scaffold(mol)
            except Exception as err:
                reject(position, row, raw, err)
                continue
            rows.append(row), smiles.append(raw), kept.append(position)
            canonical.append(canonical_smiles(mol)), scaffolds.append(scaffold)
            n_nodes.append(graph.num_nodes), n_edges.append(graph.edge_index.shape[1])
            xs.append(graph.x), edges.append(graph.edge_index.T), eattrs.append(graph.edge_attr)
            has_pos = has_pos or pos is not None
            positions.append(np.asarray(pos, dtype=np.float32) if pos is not None else None)
    bad.sort()  # input order, as if one pass had found them
    bad_rows = [b[1] for b in bad]
    bad_smiles = [b[2] for b in bad]
    bad_reasons = [b[3] for b in bad]

    columns: dict[str, pa.Array] = {
        "row": pa.array(rows, type=pa.int64()),
        "smiles": pa.array(smiles, type=pa.string()),
        "canonical_smiles": pa.array(canonical, type=pa.string()),
        "scaffold": pa.array(scaffolds, type=pa.string()),
    }
    for name in carry_columns:
        values = frame[name].iloc[kept]
        columns[name] = pa.array(values.tolist(), from_pandas=True)
    columns["num_nodes"] = pa.array(n_nodes, type=pa.int32())
    columns["num_edges"] = pa.array(n_edges, type=pa.int32())
    columns["x"] = _list_column(xs, pa.int16())
    columns["edge_index"] = _list_column(edges, pa.int32())  # [E, 2] pairs, flattened
    columns["edge_attr"] = _list_column(eattrs, pa.int16())
    if has_pos:
        missing = [r for r, p in zip(rows, positions) if p is None]
        if missing:
            raise ValueError(f"source gave positions for some rows but not rows {missing[:5]}")
        columns["pos"] = _list_column(positions, pa.float32())
    invalid = pa.table(
        {"row": bad_rows, "smiles": bad_smiles, "reason": bad_reasons}, schema=INVALID_SCHEMA
    )
    return pa.table(columns), invalid


def _shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def _invalid_name(index: int) -> str:
    return f"invalid-{index:05d}.parquet"


ShardEngine = Callable[..., None]
"""Runs :func:`run_shard` over shards somewhere else (see :func:`prepare_dataset`)."""


def run_shard(
    source: Any, frame: pd.DataFrame, index: int, path: str, options: dict[str, Any]
) -> tuple[int, int, int]:
    """Featurize one shard and write it (invalid part first, then the shard that marks it done)."""
    graphs, invalid = featurize_frame(source, frame, **options)
    path = Path(path)
    atomic_write_table(invalid, path / "invalid" / _invalid_name(index))
    atomic_write_table(graphs, path / "shards" / _shard_name(index))
    return index, graphs.num_rows, invalid.num_rows


def _raise_first_invalid(path: Path, index: int) -> None:
    table = pq.read_table(path / "invalid" / _invalid_name(index))
    if table.num_rows:
        first = table.slice(0, 1).to_pylist()[0]
        raise InvalidMoleculeError(first["smiles"], first["reason"], row=first["row"])


def prepare_dataset(
    source: Any,
    subset: str | None = None,
    *,
    schema: FeatureSchema = OGB_SCHEMA,
    standardize: StandardizeOptions | None = None,
    max_heavy_atoms: int | None = None,
    on_invalid: OnInvalid = "error",
    processes: int = 1,
    shard_size: int = 10_000,
    limit: int | None = None,
    root: str | Path | None = None,
    progress: bool = True,
    conformers: ConformerOptions | None = None,
    shard_engine: ShardEngine | None = None,
) -> PrepareResult:
    """Featurize ``source`` (a :class:`molfm.data.sources.Source`) into the parquet cache.

    Parameters
    ----------
    on_invalid
        ``"error"`` raises :class:`InvalidMoleculeError` for the first rejected row of
        the first finished shard that has one (the lowest row when ``processes == 1``); ``"skip"`` keeps going and records every
        rejected row in ``invalid.csv``.
    processes
        Worker processes (spawned, so RDKit/torch state is never forked).
    limit
        Only the first ``limit`` rows of the subset (part of the cache key).
    conformers
        Generate RDKit coordinates (``pos``) for sources without them; the options are part of
        the cache key, and molecules that cannot be embedded are rejected rows.
    shard_engine
        Runs the shards elsewhere (e.g. Ray, :func:`molfm.scale.engines.ray_shard_engine`):
        called as ``shard_engine(source, frame, todo, shard_size, path, options, on_done)``,
        it calls :func:`run_shard` once per shard index in ``todo`` on ``frame``'s rows and
        ``on_done((index, n_ok, n_bad))`` as each finishes. Default: this machine's
        ``processes``.
    """
    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', not {on_invalid!r}")
    subset = subset or source.info.default_subset
    standardize = standardize or StandardizeOptions()
    key_parts = {
        "source": source.fingerprint(subset),
        "schema": [schema.name, schema.version, schema.fingerprint()],
        "standardize": standardize.to_dict(),
        "max_heavy_atoms": max_heavy_atoms,
        "limit": limit,
        "shard_size": shard_size,
    }
    if conformers is not None:  # only then: keys of data prepared without conformers stay put
        key_parts["conformers"] = conformers.to_dict()
    path = dataset_dir(source.info.name, subset, dataset_key(key_parts), root)
    if (path / MANIFEST_NAME).exists():
        dataset = PreparedDataset(path)
        m = dataset.manifest
        if on_invalid == "error" and m["n_invalid"]:
            for index in range(len(m["shards"])):
                _raise_first_invalid(path, index)
        return PrepareResult(dataset, m["n_rows"], m["n_valid"], m["n_invalid"], cached=True)

    start = time.perf_counter()
    frame = source.load(subset)
    if limit is not None:
        frame = frame.iloc[:limit]
    for sub in ("shards", "invalid"):
        (path / sub).mkdir(parents=True, exist_ok=True)
        for leftover in (path / sub).glob(f"{TMP_PREFIX}*"):  # a write cut short by a kill
            leftover.unlink()
    n_shards = max(1, math.ceil(len(frame) / shard_size))
    done = [i for i in range(n_shards) if (path / "shards" / _shard_name(i)).exists()]
    if on_invalid == "error":
        for index in done:
            _raise_first_invalid(path, index)
    todo = [i for i in range(n_shards) if i not in set(done)]
    targets = list(source.targets_for(subset))
    carry = targets + ["text"] + list(getattr(source, "carry_columns", ()))
    options = dict(
        schema=schema,
        standardize=standardize,
        max_heavy_atoms=max_heavy_atoms,
        carry_columns=carry,
        conformers=conformers,
    )

    def shard_frame(i: int) -> pd.DataFrame:
        return frame.iloc[i * shard_size : (i + 1) * shard_size]

    if shard_engine is None:
        _run_all(
            source, shard_frame, todo, path, options, processes, on_invalid, progress, len(frame)
        )
    else:

        def on_done(done: tuple[int, int, int]) -> None:
            if on_invalid == "error" and done[2]:
                _raise_first_invalid(path, done[0])

        shard_engine(source, frame, todo, shard_size, str(path), options, on_done)

    invalid = pa.concat_tables(
        [pq.read_table(path / "invalid" / _invalid_name(i)) for i in range(n_shards)]
    )
    with atomic_writer(path / "invalid.csv") as tmp:
        invalid.to_pandas().to_csv(tmp, index=False)
    shard_names = [_shard_name(i) for i in range(n_shards)]
    schema_columns = pq.read_schema(path / "shards" / shard_names[0]).names
    n_valid = sum(pq.ParquetFile(path / "shards" / s).metadata.num_rows for s in shard_names)
    manifest = {
        "name": source.info.name,
        "subset": subset,
        "molfm_version": __version__,
        "source": {
            "description": source.info.description,
            "provenance": source.info.provenance,
            "license": source.info.license,
            "fingerprint": key_parts["source"],
        },
        "feature_schema": schema.to_dict(),
        "standardize": standardize.to_dict(),
        "max_heavy_atoms": max_heavy_atoms,
        "limit": limit,
        "shard_size": shard_size,
        "conformers": None if conformers is None else conformers.to_dict(),
        "task": source.task_for(subset),
        "targets": targets,
        "units": dict(source.info.units),
        "columns": schema_columns,
        "shards": shard_names,
        "n_rows": len(frame),
        "n_valid": n_valid,
        "n_invalid": invalid.num_rows,
        "seconds": round(time.perf_counter() - start, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(path / MANIFEST_NAME, json.dumps(manifest, indent=2))
    return PrepareResult(PreparedDataset(path), len(frame), n_valid, invalid.num_rows, False)


def _run_all(source, shard_frame, todo, path, options, processes, on_invalid, progress, n_rows):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not progress,
        transient=False,
    )
    with bar:
        task = bar.add_task("featurizing", total=n_rows)
        bar.advance(task, n_rows - sum(len(shard_frame(i)) for i in todo))
        if processes <= 1:
            for i in todo:
                _, n_ok, n_bad = run_shard(source, shard_frame(i), i, str(path), options)
                bar.advance(task, n_ok + n_bad)
                if on_invalid == "error" and n_bad:
                    _raise_first_invalid(path, i)
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
            pending = set()
            queue = list(todo)
            try:
                while queue or pending:
                    while queue and len(pending) < 2 * processes:  # bounded memory in flight
                        i = queue.pop(0)
                        args = (source, shard_frame(i), i, str(path), options)
                        pending.add(pool.submit(run_shard, *args))
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        i, n_ok, n_bad = future.result()
                        bar.advance(task, n_ok + n_bad)
                        if on_invalid == "error" and n_bad:
                            _raise_first_invalid(path, i)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise


def prepare(cfg: PrepareConfig, shard_engine: ShardEngine | None = None) -> PrepareResult:
    """``molfm data prepare``: featurize the data set or file ``cfg`` names with its options.

    Raises
    ------
    ValueError, FileNotFoundError
        One line, before anything is read: no data or both a data set and a file, a name that
        is not a data set, a file that does not exist, an unknown feature schema. With
        ``on_invalid="error"``, the first rejected row (:class:`InvalidMoleculeError`).
    """
    from molfm.chem.featurize import get_schema
    from molfm.data.sources import get_source, user_file_source
    from molfm.data.sources.resolve import resolve_data
    from molfm.options import check_options

    check_options(cfg)
    if cfg.name is not None and cfg.data is not None and cfg.name != cfg.data:
        raise ValueError(f"give the data set once: NAME {cfg.name!r} or --data {cfg.data!r}")
    chosen = cfg.name if cfg.name is not None else cfg.data
    if cfg.data_path is not None:
        if chosen is not None:
            raise ValueError("give a data set NAME (or --data) or --data-path FILE, not both")
        resolve_data(None, cfg.data_path)  # one line when it does not exist or is a directory
        source = user_file_source(
            Path(cfg.data_path),
            smiles_column=cfg.smiles_column,
            target_columns=cfg.target_columns,
            text_column=cfg.text_column,
        )
    elif chosen is not None:
        flag = "--data" if cfg.data is not None else "NAME"
        source = get_source(resolve_data(chosen, None, flag=flag))
    else:
        raise ValueError("give a data set NAME (see `molfm data list`) or --data-path FILE")
    standardize = StandardizeOptions(
        largest_fragment=cfg.largest_fragment, neutralize=cfg.neutralize
    )
    return prepare_dataset(
        source,
        cfg.subset,
        schema=get_schema(cfg.feature_schema),
        standardize=standardize,
        max_heavy_atoms=cfg.max_heavy_atoms,
        on_invalid=cfg.on_invalid,
        processes=max(1, min(cfg.num_workers, os.cpu_count() or 1)),
        shard_size=cfg.shard_size,
        limit=cfg.limit,
        conformers=ConformerOptions(seed=cfg.conformer_seed) if cfg.conformers else None,
        shard_engine=shard_engine,
    )
