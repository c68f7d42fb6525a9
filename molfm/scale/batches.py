"""Batch functions: a table of input rows in, a table of results (and one of rejected rows)
out, the model loaded once when the function is built.

They know nothing of the engine that calls them: the local engine builds one per process,
Ray one per actor (:mod:`molfm.scale.engines`), and both hand them the same parts of the
input (:mod:`molfm.scale.chunks`). A part arrives as a pandas frame indexed by row number,
holding the SMILES column (CSV/TSV/Parquet) or ``molblock`` (SDF records).

Each job is a small picklable description (:class:`PredictJob`, :class:`EmbedJob`,
:class:`NameJob`): its config and the batch function it builds, so a worker process or an
actor on another node builds the function itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "BatchFunction",
    "Job",
    "PredictJob",
    "EmbedJob",
    "NameJob",
    "GenerateJob",
    "Embedder",
    "load_embedder",
    "embedder_kind",
    "REJECTED_COLUMNS",
]

REJECTED_COLUMNS = ["row", "smiles", "reason"]


class BatchFunction(Protocol):
    def __call__(self, frame: pd.DataFrame) -> tuple[pa.Table, pd.DataFrame]:
        """Results of the rows of ``frame`` (in row order) and the rejected rows
        ``row, smiles, reason``."""
        ...


class Job(Protocol):
    """A picklable description of a batch job."""

    config: Any

    def build(self) -> BatchFunction: ...

    def fingerprint(self) -> str:
        """What the results depend on (model, options; not the engine or worker count)."""
        ...

    def input_columns(self) -> list[str] | None:
        """Columns to read from a CSV/TSV/Parquet part (None: all)."""
        ...


_NOT_IN_FINGERPRINT = {
    "engine",
    "ray_address",
    "workers",
    "gpus_per_worker",
    "on_invalid",
    "output",
    "progress",
    "num_workers",
    "cache_dir",
}


def config_fingerprint(kind: str, config: Any) -> str:
    """A hash of the config fields that change results (:data:`_NOT_IN_FINGERPRINT` do not)."""
    fields = {k: v for k, v in asdict(config).items() if k not in _NOT_IN_FINGERPRINT}
    text = json.dumps({"job": kind, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _device(config: Any):
    from molfm.engine.hardware import inference_device

    return inference_device(config.accelerator, config.devices)


def _featurize(config: Any, frame: pd.DataFrame):
    """``(good, rejected)``: featurized molecules ``(row, smiles, Data)`` of a part, and its
    unreadable rows (always skipped here; the runner applies ``--on-invalid``)."""
    from molfm.tasks.predict import featurize_sdf_records, featurize_smiles

    rows = frame.index.to_numpy()
    if "molblock" in frame.columns:
        return featurize_sdf_records(
            frame["molblock"].tolist(), rows.tolist(), conformers=config.conformers
        )
    good, rejected = featurize_smiles(
        frame[config.smiles_column].tolist(),
        on_invalid="skip",
        conformers=getattr(config, "conformers", False),
        num_workers=max(1, getattr(config, "num_workers", 1)),
    )
    # featurize_smiles numbers rows by position in the list: back to file rows
    good = [(int(rows[i]), smiles, data) for i, smiles, data in good]
    for item in rejected:
        item["row"] = int(rows[item["row"]])
    return good, rejected


def _check_flat(mode: str, where: str, encoder: Any, good: list) -> None:
    """A 3D mode on flat SDF records (no 3D coordinates): one line naming the rows."""
    from molfm.chem.io import flat_records_message
    from molfm.data.sources.base import coordinates_error
    from molfm.tasks.predict import has_3d_channel

    if mode not in ("3d", "2d3d") or not has_3d_channel(type(encoder)):
        return
    flat = [row for row, _, data in good if getattr(data, "pos", None) is None]
    if flat:
        raise coordinates_error(
            flat_records_message(where, flat, len(good)),
            f"--mode {mode}",
            "add --conformers to generate them, or use --mode 2d",
        )


def _rejected_frame(rejected: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rejected, columns=REJECTED_COLUMNS).astype({"row": "int64"})


# --- predict ------------------------------------------------------------------------------------


@dataclass
class PredictJob:
    config: Any  # molfm.tasks.config.PredictConfig

    def fingerprint(self) -> str:
        return config_fingerprint("predict", self.config)

    def input_columns(self) -> list[str] | None:
        return [self.config.smiles_column]

    def build(self) -> BatchFunction:
        return _Predict(self.config)


class _Predict:
    def __init__(self, config: Any) -> None:
        from molfm.tasks.config import encoder_mode
        from molfm.tasks.predict import load_property_model

        self.config = config
        self.device = _device(config)
        self.model = load_property_model(config.model, device=self.device).eval()
        self.mode = encoder_mode(config.mode)

    def __call__(self, frame: pd.DataFrame) -> tuple[pa.Table, pd.DataFrame]:
        from molfm.engine.hardware import inference_autocast
        from molfm.tasks.predict import prediction_frame

        good, rejected = _featurize(self.config, frame)
        _check_flat(self.config.mode, self.config.data_path, self.model.encoder, good)
        with inference_autocast(self.device, self.config.precision):
            table = prediction_frame(
                self.model,
                good,
                mode=self.mode,
                batch_size=self.config.batch_size,
                device=self.device,
            )
        return pa.Table.from_pandas(table, preserve_index=False), _rejected_frame(rejected)


# --- embed --------------------------------------------------------------------------------------


@dataclass
class EmbedJob:
    config: Any  # molfm.scale.config.EmbedConfig

    def fingerprint(self) -> str:
        return config_fingerprint("embed", self.config)

    def input_columns(self) -> list[str] | None:
        id_column = self.config.id_column
        return [self.config.smiles_column] + ([id_column] if id_column else [])

    def build(self) -> BatchFunction:
        return _Embed(self.config)


def embedder_kind(model_type: str) -> str:
    """Which encoder a checkpoint's ``model_type`` embeds with: ``smiles`` (GP-MoLFormer),
    ``molca`` (MolCA's Q-Former) or ``graph`` (a graph encoder or a property model's)."""
    if model_type == "gp-molformer":
        return "smiles"
    if model_type in ("molca", "molca-stage1"):
        return "molca"
    return "graph"


class Embedder:
    """Vectors of featurized molecules from one loaded model (``kind`` from
    :func:`embedder_kind`): what ``molfm embed``'s batch function and a server's embed
    endpoint both run.

    ``model`` is the loaded checkpoint (``(model, tokenizer)`` for GP-MoLFormer)."""

    def __init__(
        self,
        model: Any,
        kind: str,
        *,
        mode: str | None = None,
        batch_size: int = 64,
        device: Any = "cpu",
        precision: str = "32-true",
    ) -> None:
        self.kind, self.mode, self.batch_size = kind, mode, batch_size
        self.device, self.precision = device, precision
        self.tokenizer = None
        if kind == "smiles":
            model, self.tokenizer = model
        self.model = model
        self.encoder = None
        if kind == "graph":
            from molfm.tasks.embed import graph_encoder_of

            self.encoder = graph_encoder_of(model)
            if self.encoder is None:
                raise ValueError(f"a {type(model).__name__} has no graph encoder to embed with")

    @property
    def dim(self) -> int:
        if self.kind == "graph":
            return self.encoder.embedding_dim
        if self.kind == "smiles":
            return self.model.config.n_embd
        return 0  # MolCA: known after the first batch

    def check_coordinates(self, mode_option: str, good: list, where: str) -> None:
        """3D modes on molecules without coordinates: one line (graph encoders)."""
        if self.kind == "graph":
            _check_flat(mode_option, where, self.encoder, good)

    def readable(self, good: list, rejected: list) -> list:
        """The molecules this model can read: GP-MoLFormer reads canonical SMILES tokens, so
        one with a token outside its vocabulary, or too long, goes to ``rejected`` with the
        reason. Returns ``(row, smiles the model reads, Data)``."""
        if self.kind != "smiles":
            return good
        from molfm.chem.parse import canonical_smiles, parse_smiles

        kept = []
        limit = self.model.config.max_length
        for row, smiles, data in good:
            text = canonical_smiles(parse_smiles(smiles)) or smiles
            try:
                ids = self.tokenizer.encode(text)
            except ValueError as err:
                rejected.append({"row": row, "smiles": smiles, "reason": str(err)})
                continue
            if len(ids) > limit:
                reason = f"{len(ids)} tokens exceed the model's {limit}"
                rejected.append({"row": row, "smiles": smiles, "reason": reason})
                continue
            kept.append((row, text, data))
        return kept

    def vectors(self, good: list) -> np.ndarray:
        """``[len(good), D]`` float32 vectors of readable molecules (:meth:`readable`)."""
        from molfm.engine.hardware import inference_autocast

        if not good:
            return np.zeros((0, self.dim), dtype=np.float32)
        graphs = [data for _, _, data in good]
        options = {"batch_size": self.batch_size, "device": self.device}
        with inference_autocast(self.device, self.precision):
            if self.kind == "graph":
                from molfm.tasks.embed import embed_graphs

                return embed_graphs(self.encoder, graphs, mode=self.mode, **options)
            if self.kind == "molca":
                from molfm.systems.molca.embed import embed_molecules

                return embed_molecules(self.model, graphs, **options)
            from molfm.systems.gp_molformer.embed import embed_smiles

            return embed_smiles(self.model, self.tokenizer, [s for _, s, _ in good], **options)


def load_embedder(model: str, config: Any) -> Embedder:
    """An :class:`Embedder` for a shipped name or checkpoint directory, with ``config``'s
    mode, batch size, device and precision."""
    from molfm.hub import from_pretrained, load_config, resolve_checkpoint
    from molfm.tasks.config import encoder_mode

    device = _device(config)
    path = resolve_checkpoint(model)
    kind = embedder_kind(load_config(path).get("model_type", ""))
    if kind == "smiles":
        from molfm.systems.gp_molformer.model import load_smiles_model

        loaded = load_smiles_model(path, device=device)
        loaded[0].eval()
    else:
        loaded = from_pretrained(path, map_location=device).eval()
    return Embedder(
        loaded,
        kind,
        mode=encoder_mode(config.mode),
        batch_size=config.batch_size,
        device=device,
        precision=config.precision,
    )


class _Embed:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.embedder = load_embedder(config.model, config)

    def __call__(self, frame: pd.DataFrame) -> tuple[pa.Table, pd.DataFrame]:
        good, rejected = _featurize(self.config, frame)
        self.embedder.check_coordinates(self.config.mode, good, self.config.data_path)
        smiles_of = {row: smiles for row, smiles, _ in good}
        good = self.embedder.readable(good, rejected)
        vectors = self.embedder.vectors(good)
        rows = np.array([r for r, _, _ in good], dtype=np.int64)
        columns: dict[str, Any] = {"row": pa.array(rows)}
        if self.config.id_column:
            columns[self.config.id_column] = pa.array(
                frame.loc[rows, self.config.id_column].tolist(), type=pa.string()
            )
        columns["smiles"] = pa.array([smiles_of[r] for r in rows.tolist()], type=pa.string())
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
        rejected.sort(key=lambda item: item["row"])
        return pa.table(columns), _rejected_frame(rejected)


# --- name ---------------------------------------------------------------------------------------


@dataclass
class NameJob:
    """``molfm name`` (``task="iupac"``, column ``name``) or ``molfm caption`` (``"caption"``)."""

    config: Any  # molfm.systems.molca.config.NameConfig or CaptionConfig
    task: str = "iupac"

    def fingerprint(self) -> str:
        return config_fingerprint(f"describe-{self.task}", self.config)

    def input_columns(self) -> list[str] | None:
        return [self.config.smiles_column]

    def build(self) -> BatchFunction:
        return _Describe(self.config, self.task)


class _Describe:
    def __init__(self, config: Any, task: str) -> None:
        from molfm.systems.molca.run import load_describer

        self.config, self.task = config, task
        self.column = "name" if task == "iupac" else "caption"
        self.model = load_describer(config, task)
        # one bar per batch of beams only where it has the terminal to itself
        self.progress = config.progress and config.engine == "local" and config.workers == 1

    def __call__(self, frame: pd.DataFrame) -> tuple[pa.Table, pd.DataFrame]:
        from molfm.systems.molca.run import describe_with

        good, rejected = _featurize(self.config, frame)
        texts, verified = describe_with(
            self.config,
            self.model,
            self.task,
            [data for _, _, data in good],
            [smiles for _, smiles, _ in good],
            progress=self.progress,
        )
        table = pd.DataFrame(
            {
                "row": np.array([r for r, _, _ in good], dtype=np.int64),
                "smiles": [s for _, s, _ in good],
                self.column: texts,
            }
        )
        if verified is not None:
            table["verified"] = verified
        return pa.Table.from_pandas(table, preserve_index=False), _rejected_frame(rejected)


# --- generate (seeded shards) -------------------------------------------------------------------


@dataclass
class GenerateJob:
    config: Any  # molfm.systems.gp_molformer.config.GenerateConfig

    def fingerprint(self) -> str:
        return config_fingerprint("generate", self.config)

    def input_columns(self) -> list[str] | None:
        return None

    def build(self) -> BatchFunction:
        return _Generate(self.config)


class _Generate:
    """One shard ``{shard, n, seed}`` -> its ``n`` samples (``molfm generate``'s columns)."""

    def __init__(self, config: Any) -> None:
        from molfm.systems.gp_molformer.model import load_smiles_model

        self.config = config
        self.device = _device(config)
        self.model, self.tokenizer = load_smiles_model(config.model, device=self.device)
        self.model.eval()

    def __call__(self, frame: pd.DataFrame) -> tuple[pa.Table, pd.DataFrame]:
        from molfm.systems.gp_molformer.run import generate_frame

        (shard,) = frame.to_dict("records")
        cfg = self.config
        samples = generate_frame(
            self.model,
            self.tokenizer,
            int(shard["n"]),
            batch_size=cfg.batch_size,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            max_length=cfg.max_length,
            seed=int(shard["seed"]),
            device=self.device,
            precision=cfg.precision,
            syntax_mask=cfg.syntax_mask,
        )
        return pa.Table.from_pandas(samples, preserve_index=False), _rejected_frame([])
