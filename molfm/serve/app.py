"""The ``molfm serve`` application: routes under ``/v1``, limits, errors, API key, the page.

:func:`create_app` builds the FastAPI app from a :class:`~molfm.serve.config.ServeConfig`
(the models then load in the background; ``/v1/health/ready`` says when they have) or from
services already loaded (tests, embedding). :func:`serve` checks the API key rule and runs it
with uvicorn. Every error is one JSON shape, ``{"error": {"type", "message", "code"}}``: 422 for
a bad field, an unknown model or a limit, 413 for a body over the limit, 429 (``Retry-After``)
when a model's queue is full, 504 when a request runs out of time, 401 without the API key; an
unexpected exception is logged and answered 500 ``internal`` without a trace.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.staticfiles import StaticFiles

from molfm import __version__
from molfm.serve import schemas as s
from molfm.serve.config import API_KEY_ENV, ServeConfig, check_serve_config
from molfm.serve.models import Service, load_service, model_id
from molfm.serve.routes import ServeError, add_routes
from molfm.serve.workers import QueueFull, RequestTimeout, TooMany, WorkerClosed

__all__ = ["Registry", "create_app", "serve", "WEB"]

log = logging.getLogger("molfm.serve")
WEB = Path(__file__).parent / "web"
"""The page served at ``/`` (``index.html`` and what it loads)."""


def _error(code: int, type: str, message: str, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"type": type, "message": message, "code": code}}
    return JSONResponse(body, status_code=code, headers=headers)


class Registry:
    """The served models by id, loaded in the background or given loaded."""

    def __init__(self, cfg: ServeConfig, services: Iterable[Service] = ()) -> None:
        self.cfg = cfg
        self.order: list[str] = []
        self.services: dict[str, Service] = {}
        self.loading: dict[str, str] = {}  # id -> what --models named
        self.failed: dict[str, str] = {}
        self.owned: set[str] = set()  # loaded here, so closed here (given ones: by their owner)
        for service in services:
            self._add(service.id)
            self.services[service.id] = service

    def _add(self, id: str) -> None:
        if id in self.order:
            raise ValueError(f"two models have the id {id!r}: give directories other basenames")
        self.order.append(id)

    def load(self, names: Iterable[str]) -> threading.Thread:
        """Load ``names`` one after another in a background thread."""
        for name in names:
            self._add(model_id(name))
            self.loading[model_id(name)] = name

        def run() -> None:
            for id, name in list(self.loading.items()):
                try:
                    self.services[id] = load_service(name, self.cfg)
                    self.owned.add(id)
                    log.info("model %s ready", id)
                except Exception as err:  # shown by /v1/models and /v1/health/ready
                    log.exception("model %s failed to load", id)
                    self.failed[id] = f"{type(err).__name__}: {err}"
                self.loading.pop(id, None)

        thread = threading.Thread(target=run, name="molfm-load", daemon=True)
        thread.start()
        return thread

    def find(self, id: str | None, task: str) -> Service:
        """The model ``id`` (default: the first serving ``task``), ready to serve ``task``."""
        if id is None:
            serving = [i for i in self.order if task in self._tasks(i)]
            if not serving:
                raise ServeError(422, "unknown_model", f"no loaded model serves {task}")
            id = serving[0]
        if id not in self.order:
            known = ", ".join(self.order) or "none"
            raise ServeError(422, "unknown_model", f"no model {id!r}; models: {known}")
        if id in self.failed:
            raise ServeError(503, "model_unavailable", f"model {id!r} failed to load")
        if id not in self.services:
            raise ServeError(503, "not_ready", f"model {id!r} is loading", {"Retry-After": "5"})
        service = self.services[id]
        if task not in service.tasks:
            serves = ", ".join(service.tasks)
            raise ServeError(422, "unknown_model", f"model {id!r} serves {serves}, not {task}")
        return service

    def _tasks(self, id: str) -> tuple[str, ...]:
        service = self.services.get(id)
        return service.tasks if service is not None else ()

    def info(self) -> list[dict[str, Any]]:
        out = []
        for id in self.order:
            if id in self.services:
                out.append(self.services[id].info())
            else:
                status = "failed" if id in self.failed else "loading"
                out.append({"id": id, "system": "", "status": status, "tasks": []})
                out[-1]["message"] = self.failed.get(id)
        return out

    def close(self) -> None:
        """Stop the workers of the models loaded here."""
        for id in self.owned:
            self.services[id].close()


class Guard:
    """ASGI middleware: the API key, the body size limit, and no trace for the unexpected."""

    def __init__(self, app: Any, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app, self.api_key, self.max_body = app, api_key, max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if self.api_key and path.startswith("/v1/") and not path.startswith("/v1/health/"):
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                message = "send the API key as 'Authorization: Bearer <key>'"
                response = _error(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, send)
        body, too_large = await self._read_body(scope, receive)
        if too_large:
            limit = f"{self.max_body} bytes"
            response = _error(413, "body_too_large", f"the request body is over {limit}")
            return await response(scope, receive, send)
        started = False

        async def replay() -> dict:
            nonlocal body
            if body is not None:
                message, body = {"type": "http.request", "body": body, "more_body": False}, None
                return message
            return await receive()

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, replay, tracked_send)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), path)
            if not started:
                message = "an unexpected error (logged by the server)"
                await _error(500, "internal", message)(scope, receive, send)

    async def _read_body(self, scope: dict, receive: Any) -> tuple[bytes | None, bool]:
        """The whole body (at most the limit), or ``too_large``; None for GET and the like."""
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return None, False
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return None, True
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), False
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None, True
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks), False


class _Page:
    """The page's files at ``/``; under ``/v1/`` a 404, or a 405 for a route's other method
    (a mount at ``/`` would otherwise answer every path the routes do not fully match)."""

    def __init__(self, files: StaticFiles, routes: list) -> None:
        self.files, self.routes = files, routes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            full = dict(scope, path=scope.get("root_path", "") + scope["path"])
            other = any(r.matches(full)[0] == Match.PARTIAL for r in self.routes)
            raise HTTPException(405 if other else 404)
        await self.files(scope, receive, send)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def serve_error(request: Request, err: ServeError) -> JSONResponse:
        return _error(err.code, err.type, err.message, err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = []
        for e in err.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(422, "invalid_request", "; ".join(problems) or "invalid request")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        kinds = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}
        kind = kinds.get(err.status_code, "http_error")
        return _error(err.status_code, kind, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, err: QueueFull) -> JSONResponse:
        return _error(429, "queue_full", str(err), {"Retry-After": str(err.retry_after)})

    @app.exception_handler(RequestTimeout)
    async def timeout(request: Request, err: RequestTimeout) -> JSONResponse:
        return _error(504, "timeout", str(err))

    @app.exception_handler(TooMany)
    async def too_many(request: Request, err: TooMany) -> JSONResponse:
        return _error(422, "limit_exceeded", str(err))

    @app.exception_handler(WorkerClosed)
    async def closing(request: Request, err: WorkerClosed) -> JSONResponse:
        return _error(503, "shutting_down", str(err))


def create_app(
    models: ServeConfig | Iterable[Service],
    *,
    config: ServeConfig | None = None,
    api_key: str | None = None,
    web: Path | None = WEB,
) -> FastAPI:
    """The server app.

    Parameters
    ----------
    models
        A config (its ``models`` load in a background thread, one after another) or loaded
        services (:func:`molfm.serve.models.load_service`).
    config
        Limits and settings when ``models`` are services (default: :class:`ServeConfig`'s).
    api_key
        Requests to ``/v1`` (health checks aside) must send ``Authorization: Bearer <key>``;
        default ``$MOLFM_API_KEY``; none: no key asked.
    web
        The page's folder, served at ``/`` (None: no page).
    """
    if isinstance(models, ServeConfig):
        cfg, registry = models, Registry(models)
        registry.load(cfg.models)
    else:
        cfg = config or ServeConfig()
        registry = Registry(cfg, models)
    api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        registry.close()

    app = FastAPI(
        title="molfm",
        version=__version__,
        description="Molecular foundation models over HTTP: predict, generate, decorate, name, "
        "retrieve, depict.",
        lifespan=lifespan,
        responses={"default": {"model": s.ErrorResponse}},
    )
    app.state.registry, app.state.config = registry, cfg
    _install_errors(app)
    add_routes(app, registry, cfg)
    if web is not None and (Path(web) / "index.html").is_file():
        app.mount("/", _Page(StaticFiles(directory=web, html=True), app.routes), name="web")
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=cfg.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(Guard, api_key=api_key, max_body_bytes=cfg.max_body_bytes)
    return app


def serve(cfg: ServeConfig) -> None:
    """Check the API key rule and the models (one line each), then serve until stopped."""
    import uvicorn

    from molfm.serve.models import model_kind

    api_key = os.environ.get(API_KEY_ENV) or None
    check_serve_config(cfg, api_key)
    ids = [model_id(name) for name in cfg.models]
    for name in cfg.models:
        model_kind(name)  # a wrong name, path or model type: before anything starts
    if len(set(ids)) != len(ids):
        raise ValueError(f"--models: two models have the same id ({', '.join(ids)})")
    logging.basicConfig(level=cfg.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if cfg.torch_threads is not None:  # process-wide, so set here and not in create_app
        import torch

        torch.set_num_threads(cfg.torch_threads)
    app = create_app(cfg, api_key=api_key)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level)
