"""The ``/v1`` routes of ``molfm serve`` (:func:`add_routes`, called by
:func:`molfm.serve.app.create_app`).

Each route checks the request against the limits (422 ``limit_exceeded``), finds its model
(422 ``unknown_model``) and awaits the model's service (:mod:`molfm.serve.models`) within the
request's time limit (:class:`~molfm.serve.workers.Deadline`; 504 when it runs out).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from molfm.serve import schemas as s
from molfm.serve.config import ServeConfig
from molfm.serve.workers import Deadline

__all__ = ["ServeError", "check_items", "add_routes"]


class ServeError(Exception):
    """A whole-request error: its HTTP code, type and one-line message."""

    def __init__(self, code: int, type: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.code, self.type, self.message, self.headers = code, type, message, headers


def check_items(
    cfg: ServeConfig, items: list[str], limit: int, what: str = "smiles", lengths: bool = True
) -> None:
    """At most ``limit`` items, each (with ``lengths``) at most ``max_smiles_length`` long."""
    if len(items) > limit:
        raise ServeError(
            422, "limit_exceeded", f"{len(items)} {what} in one request; at most {limit}"
        )
    for i, item in enumerate(items if lengths else ()):
        if len(item) > cfg.max_smiles_length:
            message = f"{what}[{i}] has {len(item)} characters; at most {cfg.max_smiles_length}"
            raise ServeError(422, "limit_exceeded", message)


def _depict(smiles: list[str], width: int, height: int) -> list[dict[str, Any]]:
    from molfm.chem.depict import svg
    from molfm.chem.parse import InvalidMoleculeError
    from molfm.serve.models import item_error

    out = []
    for text in smiles:
        try:
            out.append({"ok": True, "smiles": text, "svg": svg(text, width, height)})
        except InvalidMoleculeError as err:
            out.append(item_error(text, "invalid_smiles", err.reason))
    return out


def add_routes(app: FastAPI, registry: Any, cfg: ServeConfig) -> None:
    """Add the ``/v1`` routes over ``registry``'s models."""

    @app.get(
        "/v1/health/live",
        response_model=s.Health,
        response_model_exclude_none=True,
        tags=["health"],
    )
    async def live() -> dict:
        """The server answers."""
        return {"status": "live"}

    @app.get(
        "/v1/health/ready",
        response_model=s.Health,
        response_model_exclude_none=True,
        tags=["health"],
        responses={503: {"model": s.Health}},
    )
    async def ready() -> Any:
        """200 once every model is loaded; 503 while loading (or when one failed)."""
        if registry.failed:
            failed = ", ".join(sorted(registry.failed))
            body = {"status": "failed", "message": f"failed to load: {failed}"}
            return JSONResponse(body, status_code=503)
        if registry.loading:
            return JSONResponse({"status": "loading"}, status_code=503)
        return {"status": "ready"}

    @app.get("/v1/models", response_model=s.ModelsResponse, tags=["models"])
    async def models() -> dict:
        """The models, what each serves, its targets, training domain and limits."""
        return {"models": registry.info(), "limits": cfg.limits()}

    @app.post("/v1/predict", response_model=s.PredictResponse, tags=["models"])
    async def predict(request: s.PredictRequest) -> dict:
        """Properties of each molecule (``molfm predict``), in input order."""
        limit = cfg.max_conformer_items if request.conformers else cfg.max_predict_items
        check_items(cfg, request.smiles, limit)
        service = registry.find(request.model, "predict")
        problem = service.coordinates_problem(request.mode, request.conformers)
        if problem:
            raise ServeError(422, "invalid_request", problem)
        deadline = Deadline(cfg.timeout_s)
        results = await service.predict(request.smiles, request.mode, request.conformers, deadline)
        return {"model": service.id, "results": results}

    @app.post("/v1/generate", response_model=s.GenerateResponse, tags=["models"])
    async def generate(request: s.GenerateRequest) -> dict:
        """De novo molecules (``molfm generate -n N --seed S``: the same rows)."""
        return await _sample(request, "generate")

    @app.post("/v1/decorate", response_model=s.DecorateResponse, tags=["models"])
    async def decorate(request: s.DecorateRequest) -> dict:
        """A scaffold's [*] filled in (``molfm decorate``: the same rows)."""
        check_items(cfg, [request.scaffold], 1, "scaffold")
        return await _sample(request, "decorate")

    async def _sample(request: Any, task: str) -> dict:
        if request.num_molecules > cfg.max_num_molecules:
            message = f"num_molecules {request.num_molecules}; at most {cfg.max_num_molecules}"
            raise ServeError(422, "limit_exceeded", message)
        service = registry.find(request.model, task)
        if task == "decorate":
            try:
                service.check_scaffold(request.scaffold)
            except ValueError as err:
                raise ServeError(422, "invalid_scaffold", str(err)) from None
        return await service.sample(request, Deadline(cfg.timeout_s))

    @app.post("/v1/name", response_model=s.NameResponse, tags=["models"])
    async def name(request: s.NameRequest) -> dict:
        """IUPAC names (``molfm name``), in input order."""
        check_items(cfg, request.smiles, cfg.max_name_items)
        service = registry.find(request.model, "name")
        deadline = Deadline(cfg.timeout_s)
        return {
            "model": service.id,
            "results": await service.name(request.smiles, request.verify, deadline),
        }

    @app.post(
        "/v1/retrieve",
        response_model=s.RetrieveResponse,
        response_model_exclude_none=True,
        tags=["models"],
    )
    async def retrieve(request: s.RetrieveRequest) -> dict:
        """Molecules for texts (``text``) or texts for molecules (``smiles``): ``molfm
        retrieve``'s hits, best first."""
        if bool(request.text) == bool(request.smiles):
            message = "give text (text -> molecule) or smiles (molecule -> text), not both"
            raise ServeError(422, "invalid_request", message)
        if request.text:
            direction, queries = "text-to-molecule", request.text
            check_items(cfg, queries, cfg.max_retrieve_items, "text", lengths=False)
        else:
            direction, queries = "molecule-to-text", request.smiles
            check_items(cfg, queries, cfg.max_retrieve_items)
        if request.candidates is not None and len(request.candidates) > cfg.max_candidates:
            message = f"{len(request.candidates)} candidates; at most {cfg.max_candidates}"
            raise ServeError(422, "limit_exceeded", message)
        service = registry.find(request.model, "retrieve")
        deadline = Deadline(cfg.timeout_s)
        candidates = await deadline.thread(service.candidates, direction, request.candidates)
        if candidates is None:
            what = "molecules" if direction == "text-to-molecule" else "texts"
            message = f"no {what} to search: send candidates, or start the server with --candidates"
            raise ServeError(422, "no_candidates", message)
        results = await service.retrieve(queries, direction, candidates, request.top_k, deadline)
        return {"model": service.id, "direction": direction, "results": results}

    @app.post("/v1/embed", response_model=s.EmbedResponse, tags=["models"])
    async def embed(request: s.EmbedRequest) -> dict:
        """One vector per molecule (``molfm embed``'s), in input order."""
        from molfm.serve.embed import embed_items

        check_items(cfg, request.smiles, cfg.max_embed_items)
        service = registry.find(request.model, "embed")
        if request.mode in ("3d", "2d3d"):
            problem = getattr(service, "coordinates_problem", lambda *a: None)(request.mode, False)
            if problem:
                raise ServeError(422, "invalid_request", problem)
        return await embed_items(service, request.smiles, request.mode, Deadline(cfg.timeout_s))

    @app.post("/v1/depict", response_model=s.DepictResponse, tags=["tools"])
    async def depict(request: s.DepictRequest) -> dict:
        """SVG drawings of molecules (RDKit), in input order; no model needed."""
        check_items(cfg, request.smiles, cfg.max_depict_items)
        deadline = Deadline(cfg.timeout_s)
        results = await deadline.thread(_depict, request.smiles, request.width, request.height)
        return {"results": results}
