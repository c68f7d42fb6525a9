"""What each loaded model serves, through the library functions the CLI uses.

* a property model (``molfm predict``): ``predict`` -- molecules featurized per request
  (:func:`molfm.tasks.predict.featurize_smiles`), batched across requests by the model's
  worker into :func:`~molfm.tasks.predict.predict_graphs` passes;
* a GP-MoLFormer model (``molfm generate`` / ``decorate``): ``generate``, ``decorate`` -- each
  request one whole job (:func:`~molfm.systems.gp_molformer.run.generate_frame` /
  :func:`~molfm.systems.gp_molformer.run.decorate_frame`), so a seed gives the CLI's molecules;
* a MolCA model (``molfm name``): ``name`` -- molecules batched across requests into
  :func:`~molfm.systems.molca.run.describe_molecules` beam searches;
* a MolCA stage-1 model (``molfm retrieve``): ``retrieve`` -- one job per request
  (:func:`~molfm.systems.molca.retrieval.retrieve`).

Settings the CLI has flags for (beams, re-rank window, sampling batch) take the CLI's defaults,
so a request answers what the command prints for the same molecules and seed. Models are named
by id: a shipped name, or a directory's basename (its parent's for a run's ``model/``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from molfm.serve.config import ServeConfig
from molfm.serve.workers import Deadline, Stopped, Worker

__all__ = ["SERVED_TYPES", "model_id", "model_kind", "Service", "load_service", "item_error"]

SERVED_TYPES = {
    "property": ("predict",),
    "gp-molformer": ("generate", "decorate"),
    "molca": ("name",),
    "molca-stage1": ("retrieve",),
}
"""Checkpoint model type -> the endpoints a model of that type serves."""


def model_id(name_or_dir: str) -> str:
    """The id requests use: a shipped name as given, else the directory's basename (its
    parent's when it is a run's ``model/`` folder)."""
    from molfm.hub import shipped_models

    if name_or_dir in shipped_models():
        return name_or_dir
    path = Path(name_or_dir).resolve()
    return path.parent.name if path.name == "model" else path.name


def model_kind(name_or_dir: str) -> tuple[Path, str]:
    """The checkpoint directory and its model type; a type no endpoint serves is one line."""
    from molfm.hub import load_config, resolve_checkpoint

    path = resolve_checkpoint(name_or_dir)
    kind = load_config(path).get("model_type")
    if kind not in SERVED_TYPES:
        raise ValueError(
            f"--models {name_or_dir} holds a {kind!r} model, which no endpoint serves (serve "
            f"{', '.join(SERVED_TYPES)} models)"
        )
    return path, kind


def item_error(smiles: str, kind: str, message: str, field: str = "smiles") -> dict[str, Any]:
    """One failed item of a response."""
    return {"ok": False, field: smiles, "error": {"type": kind, "message": message}}


def _number(value: Any) -> float | None:
    """A JSON number: NaN and infinities (which JSON cannot hold) become null."""
    value = float(value)
    return value if math.isfinite(value) else None


def _defaults(config_cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(config_cls)}


def _featurize(smiles: list[str], conformers: bool = False):
    """Featurized molecules and one failed item per rejected SMILES (by position)."""
    from molfm.tasks.predict import featurize_smiles

    good, rejected = featurize_smiles(smiles, on_invalid="skip", conformers=conformers)
    failed = {}
    for r in rejected:
        kind = "no_conformer" if r["reason"].startswith("no 3D conformer") else "invalid_smiles"
        failed[r["row"]] = item_error(smiles[r["row"]], kind, r["reason"])
    return good, failed


class Service:
    """A loaded model, the endpoints it serves and the worker that owns it."""

    kind = ""
    tasks: tuple[str, ...] = ()

    def __init__(self, id: str, model: Any, cfg: ServeConfig, device: Any) -> None:
        self.id, self.model, self.cfg, self.device = id, model, cfg, device
        self.worker: Worker = self._worker()

    def _worker(self) -> Worker:  # a worker for whole jobs; batching services override it
        return Worker(self.id, queue_depth=self.cfg.queue_depth)

    @property
    def system(self) -> str:
        return self.kind

    def info(self) -> dict[str, Any]:
        """``GET /v1/models``'s entry for this model."""
        limits = {
            "max_smiles_length": self.cfg.max_smiles_length,
            "timeout_s": self.cfg.timeout_s,
            "queue_depth": self.cfg.queue_depth,
            "max_batch": self.worker.max_batch,
        }
        return {
            "id": self.id,
            "system": self.system,
            "status": "ready",
            "tasks": list(self.tasks),
            "targets": [],
            "domain": None,
            "limits": limits | self._limits(),
        }

    def _limits(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self.worker.close()


class PropertyService(Service):
    kind = "property"
    tasks = ("predict", "embed")

    def _worker(self) -> Worker:
        return Worker(
            self.id,
            self._forward,
            max_batch=self.cfg.predict_batch_size,
            max_wait_s=self.cfg.batch_wait_ms / 1000,
            queue_depth=self.cfg.queue_depth,
        )

    @property
    def system(self) -> str:
        return self.model.config.encoder_type

    def info(self) -> dict[str, Any]:
        config = self.model.config
        units = config.units or {}
        targets = [{"name": t, "unit": units.get(t)} for t in config.targets]
        return super().info() | {"targets": targets, "domain": dict(config.domain) or None}

    def _limits(self) -> dict[str, Any]:
        return {"max_items": self.cfg.max_predict_items}

    def _forward(self, mode: str, items: list) -> list[np.ndarray]:
        """One forward pass over a batch of ``(graph, pair structure)`` that share a mode (the
        worker thread: the pairs were computed before the queue, in the request's thread, so
        that the one serial thread only collates and runs the model)."""
        from molfm.engine.hardware import inference_autocast
        from molfm.tasks.config import encoder_mode
        from molfm.tasks.predict import predict_graphs

        graphs, pairs = zip(*items)
        with inference_autocast(self.device, self.cfg.precision):
            values = predict_graphs(
                self.model,
                list(graphs),
                mode=encoder_mode(mode),
                batch_size=len(graphs),
                device=self.device,
                pairs=list(pairs),
            )
        return list(values)

    def _prepare(self, smiles: list[str], conformers: bool):
        """Featurized molecules with their pair structures, and the failed items."""
        from molfm.tasks.predict import pair_structures

        good, failed = _featurize(smiles, conformers)
        pairs = pair_structures(self.model, [data for _, _, data in good])
        return good, pairs, failed

    def coordinates_problem(self, mode: str, conformers: bool) -> str | None:
        """Why ``mode`` cannot run on SMILES without conformers (None when it can)."""
        from molfm.tasks.predict import has_3d_channel

        if "3d" in mode and not conformers and has_3d_channel(type(self.model.encoder)):
            return f"mode {mode} needs 3D coordinates: set conformers to true, or use mode 2d"
        return None

    async def predict(
        self, smiles: list[str], mode: str, conformers: bool, deadline: Deadline
    ) -> list[dict[str, Any]]:
        from molfm.tasks.predict import domain_reason

        good, pairs, results = await deadline.thread(self._prepare, smiles, conformers)
        work = self.worker.submit(list(zip((data for _, _, data in good), pairs)), key=mode)
        values = await deadline.gather(work)
        config = self.model.config
        classify = config.task == "classification"
        units = {
            t: (config.units or {}).get(t, "probability" if classify else None)
            for t in config.targets
        }
        for (row, text, data), value in zip(good, values):
            if isinstance(value, Exception):
                results[row] = item_error(text, "model_error", str(value) or type(value).__name__)
                continue
            reason = domain_reason(self.model, data)
            results[row] = {
                "ok": True,
                "smiles": text,
                "predictions": {t: _number(v) for t, v in zip(config.targets, value)},
                "units": units,
                "out_of_domain": bool(reason),
                "domain_reason": reason,
                "used_3d": getattr(data, "pos", None) is not None and mode != "2d",
            }
        return [results[i] for i in range(len(smiles))]


class SamplerService(Service):
    kind = "gp-molformer"
    tasks = ("generate", "decorate", "embed")

    def __init__(self, id: str, model: Any, cfg: ServeConfig, device: Any) -> None:
        self.tokenizer = model[1]
        super().__init__(id, model[0], cfg, device)

    def _limits(self) -> dict[str, Any]:
        return {"max_num_molecules": self.cfg.max_num_molecules}

    def check_scaffold(self, scaffold: str) -> None:
        """A scaffold this model can decorate, or a ValueError saying why not."""
        from molfm.systems.gp_molformer.decoration import check_scaffold

        try:
            check_scaffold(0, scaffold, self.tokenizer)
        except ValueError as err:
            raise ValueError(str(err).removeprefix("scaffold 0: ")) from None

    async def sample(self, request: Any, deadline: Deadline) -> dict[str, Any]:
        """A generate (no ``scaffold``) or decorate request: one job, as the CLI runs it."""
        from molfm.systems.gp_molformer.run import decorate_frame, generate_frame, summarize

        scaffold = getattr(request, "scaffold", None)
        options = {
            "batch_size": self.cfg.sample_batch_size,
            "temperature": request.temperature,
            "top_k": request.top_k,
            "top_p": request.top_p,
            "seed": request.seed,
            "device": self.device,
            "precision": self.cfg.precision,
        }

        def job(should_stop):
            if scaffold is not None:
                frame = decorate_frame(
                    self.model, self.tokenizer, scaffold, request.num_molecules, **options
                )
            else:

                def on_batch(k, stats):  # a request that gave up stops its sampling
                    if should_stop():
                        raise Stopped("the request timed out")

                frame = generate_frame(
                    self.model,
                    self.tokenizer,
                    request.num_molecules,
                    max_length=None,
                    syntax_mask=request.syntax_mask,
                    on_batch=on_batch,
                    **options,
                )
            return frame, summarize(frame)

        (result,) = await deadline.gather([self.worker.submit_job(job)])
        if isinstance(result, Exception):
            raise result
        frame, summary = result
        rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
        keep = ("smiles", "canonical_smiles", "valid", "truncated", "keeps_scaffold")
        results = [{"ok": True} | {k: r[k] for k in keep if k in r} for r in rows]
        summary = {k: (_number(v) if isinstance(v, float) else v) for k, v in summary.items()}
        return {"model": self.id, "results": results, "summary": summary}


class NamingService(Service):
    kind = "molca"
    tasks = ("name", "embed")

    def _worker(self) -> Worker:
        return Worker(
            self.id,
            self._name,
            max_batch=self.cfg.name_batch_size,
            max_wait_s=self.cfg.batch_wait_ms / 1000,
            queue_depth=self.cfg.queue_depth,
        )

    def _limits(self) -> dict[str, Any]:
        return {"max_items": self.cfg.max_name_items}

    def _name(self, verify: bool, items: list) -> list[tuple[str, bool | None]]:
        """One beam search over a batch of ``(smiles, graph)`` (worker thread)."""
        from molfm.systems.molca.config import NameConfig
        from molfm.systems.molca.run import describe_molecules

        defaults = _defaults(NameConfig)  # molfm name's beams and name length
        names, verified = describe_molecules(
            self.model,
            [g for _, g in items],
            [s for s, _ in items],
            "iupac",
            batch_size=len(items),
            num_beams=defaults["num_beams"],
            max_new_tokens=defaults["max_new_tokens"],
            verify=verify,
        )
        return list(zip(names, verified if verified is not None else [None] * len(names)))

    async def name(self, smiles: list[str], verify: bool, deadline: Deadline) -> list[dict]:
        good, results = await deadline.thread(_featurize, smiles)
        work = self.worker.submit([(text, data) for _, text, data in good], key=verify)
        for (row, text, _), value in zip(good, await deadline.gather(work)):
            if isinstance(value, Exception):
                results[row] = item_error(text, "model_error", str(value) or type(value).__name__)
            else:
                results[row] = {"ok": True, "smiles": text, "name": value[0], "verified": value[1]}
        return [results[i] for i in range(len(smiles))]


class RetrievalService(Service):
    kind = "molca-stage1"
    tasks = ("retrieve", "embed")

    def __init__(self, id: str, model: Any, cfg: ServeConfig, device: Any) -> None:
        super().__init__(id, model, cfg, device)
        self.molecules = self.texts = None  # the --candidates file's, read once
        if cfg.candidates is not None:
            self._read_candidates(Path(cfg.candidates))

    def _read_candidates(self, path: Path) -> None:
        from molfm.data.sources.user import read_user_table
        from molfm.systems.molca.run import read_molecules

        columns = set(read_user_table(path).columns)
        if not columns & {"smiles", "text"}:
            raise ValueError(f"--candidates {path} has neither a 'smiles' nor a 'text' column")
        if "smiles" in columns:
            rows, smiles, graphs, _ = read_molecules(path, "smiles", "skip")
            self.molecules = (rows, smiles, graphs)
        if "text" in columns:
            texts = read_user_table(path)["text"].astype(str).tolist()
            self.texts = (list(range(len(texts))), texts, texts)

    def _limits(self) -> dict[str, Any]:
        return {"max_items": self.cfg.max_retrieve_items, "max_candidates": self.cfg.max_candidates}

    def candidates(self, direction: str, given: list[str] | None):
        """``(rows, shown, items)`` to search: the request's, else the file's; None if neither."""
        if given is None:
            return self.molecules if direction == "text-to-molecule" else self.texts
        if direction == "molecule-to-text":
            return list(range(len(given))), list(given), list(given)
        good, _ = _featurize(list(given))  # unreadable candidates are left out
        return [r for r, _, _ in good], [s for _, s, _ in good], [d for _, _, d in good]

    async def retrieve(
        self, queries: list[str], direction: str, candidates: tuple, top_k: int, deadline: Deadline
    ) -> list[dict[str, Any]]:
        from molfm.systems.molca.config import RetrieveConfig
        from molfm.systems.molca.retrieval import retrieve
        from molfm.systems.molca.run import hit_table

        results: dict[int, dict] = {}
        if direction == "molecule-to-text":  # a bad SMILES query is its own error
            good, results = await deadline.thread(_featurize, queries)
            for failed in results.values():
                failed["query"] = failed.pop("smiles")
            kept = [row for row, _, _ in good]
        else:
            kept = list(range(len(queries)))
        asked = [queries[i] for i in kept]
        rows, shown, items = candidates
        defaults = _defaults(RetrieveConfig)  # molfm retrieve's re-rank window and batches

        def job(should_stop):
            hits = retrieve(
                self.model,
                asked,
                items,
                direction,
                top_k=top_k,
                rerank=defaults["rerank"],
                batch_size=defaults["batch_size"],
            )
            return hit_table(hits, asked, rows, shown, direction)

        (table,) = await deadline.gather([self.worker.submit_job(job)])
        if isinstance(table, Exception):
            raise table
        column = "smiles" if direction == "text-to-molecule" else "text"
        per_query = min(len(items), top_k)
        for n, row in enumerate(kept):
            part = table.iloc[n * per_query : (n + 1) * per_query]
            hits = [
                {column: h[column], "row": int(h["row"])}
                | {k: _number(h[k]) for k in ("score", "cosine", "match")}
                for h in part.to_dict("records")
            ]
            results[row] = {"ok": True, "query": queries[row], "hits": hits}
        return [results[i] for i in range(len(queries))]


_SERVICES = {
    "property": PropertyService,
    "gp-molformer": SamplerService,
    "molca": NamingService,
    "molca-stage1": RetrievalService,
}


def load_service(name_or_dir: str, cfg: ServeConfig) -> Service:
    """Load a model once (a shipped name or a checkpoint directory) and start its worker."""
    from molfm.engine.hardware import inference_device

    path, kind = model_kind(name_or_dir)
    device = inference_device(cfg.accelerator, cfg.devices)
    if kind == "property":
        from molfm.tasks.predict import load_property_model

        model = load_property_model(path, device=device).eval()
    elif kind == "gp-molformer":
        from molfm.systems.gp_molformer.model import load_smiles_model

        model = load_smiles_model(path, device=device)
        model[0].eval()
    else:
        from molfm.systems.molca.run import load_molca

        model = load_molca(str(path), kind, device)
        if kind == "molca":
            model.config.instruction("iupac")  # a model without naming fails in one line
    return _SERVICES[kind](model_id(name_or_dir), model, cfg, device)
