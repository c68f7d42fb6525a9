"""Limits and whole-request errors through the real app: each limit (422), the body size (413),
a full queue (429 + Retry-After), the time limit (504), an unexpected exception (500 without a
trace), the API key (401; a non-loopback host refuses to start without one), and micro-batching
of concurrent requests into one forward pass. Every wait is bounded."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

PROPERTY, SAMPLER = "transformer-m-small-qm9", "gp-molformer-small-moses"
WAIT = 20.0


@pytest.fixture(scope="module")
def small(make_app):
    """A client whose app has small limits (over the same loaded models)."""
    app = make_app(
        max_predict_items=3,
        max_conformer_items=1,
        max_depict_items=2,
        max_smiles_length=20,
        max_num_molecules=5,
        max_body_bytes=2048,
    )
    return TestClient(app)


@pytest.mark.parametrize(
    "path, body, words",
    [
        ("/v1/predict", {"smiles": ["C"] * 4}, "4 smiles in one request; at most 3"),
        ("/v1/predict", {"smiles": ["C", "C" * 21]}, "smiles[1] has 21 characters; at most 20"),
        (
            "/v1/predict",
            {"smiles": ["C", "CC"], "conformers": True},
            "2 smiles in one request; at most 1",
        ),
        ("/v1/depict", {"smiles": ["C"] * 3}, "at most 2"),
        ("/v1/generate", {"num_molecules": 6}, "num_molecules 6; at most 5"),
        ("/v1/decorate", {"scaffold": "C" * 21 + "[*]", "num_molecules": 2}, "at most 20"),
    ],
)
def test_each_limit_is_422_limit_exceeded(small, path, body, words):
    response = small.post(path, json=body)
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "limit_exceeded"
    assert words in response.json()["error"]["message"]


def test_limits_are_published(small):
    limits = small.get("/v1/models").json()["limits"]
    assert limits["max_items"]["predict"] == 3 and limits["max_body_bytes"] == 2048
    assert limits["max_items"]["predict_with_conformers"] == 1


def test_a_body_over_the_limit_is_413_with_or_without_content_length(small):
    body = b'{"smiles": ["' + b"C" * 3000 + b'"]}'
    response = small.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == {
        "type": "body_too_large",
        "message": "the request body is over 2048 bytes",
        "code": 413,
    }

    def chunks():  # chunked transfer: no Content-Length to trust
        yield body[:1000]
        yield body[1000:]

    chunked = small.post("/v1/predict", content=chunks())
    assert chunked.status_code == 413


def _block(worker) -> threading.Event:
    """Occupy a model's worker with a job until the event is set (bounded)."""
    release, started = threading.Event(), threading.Event()
    worker.submit_job(lambda should_stop: (started.set(), release.wait(WAIT)))
    assert started.wait(WAIT)
    return release


async def _until(condition) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "waited too long"
        await asyncio.sleep(0.005)


def _fresh_property_service(**config):
    from molfm.serve.config import ServeConfig
    from molfm.serve.models import load_service

    cfg = ServeConfig(accelerator="cpu", models=[PROPERTY], **config)
    return load_service(PROPERTY, cfg), cfg


def _async_client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve.test")


def test_a_full_queue_is_429_with_retry_after():
    from molfm.serve.app import create_app

    service, cfg = _fresh_property_service(queue_depth=4)
    app = create_app([service], config=cfg, api_key="")

    async def scenario():
        async with _async_client(app) as http:
            release = _block(service.worker)
            waiting = asyncio.create_task(
                http.post("/v1/predict", json={"smiles": ["CCO", "CO", "CCN", "CCC"]})
            )
            await _until(lambda: service.worker.pending == 4)
            refused = await http.post("/v1/predict", json={"smiles": ["C"]})
            too_many = await http.post("/v1/predict", json={"smiles": ["C"] * 5})
            release.set()
            return refused, too_many, await waiting

    try:
        refused, too_many, served = asyncio.run(scenario())
    finally:
        service.close()
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "queue_full"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert too_many.status_code == 422  # more than the queue holds: retrying cannot help
    assert served.status_code == 200 and all(r["ok"] for r in served.json()["results"])


def test_a_request_out_of_time_is_504_and_its_sampling_stops(make_app, shipped_services):
    client = TestClient(make_app(timeout_s=0.3))
    worker = shipped_services[SAMPLER].worker
    jobs = worker.stats.jobs
    start = time.monotonic()
    response = client.post("/v1/generate", json={"num_molecules": 10_000, "seed": 1})
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout"
    # the abandoned job stops at its next batch of 256 (10000 would take a minute or more)
    while worker.stats.jobs == jobs:
        assert time.monotonic() - start < 5, "the abandoned sampling did not stop"
        time.sleep(0.01)
    again = TestClient(make_app()).post("/v1/generate", json={"num_molecules": 3})
    assert again.status_code == 200 and len(again.json()["results"]) == 3


def test_an_unexpected_exception_is_500_without_a_trace(client, monkeypatch):
    import molfm.serve.routes as routes

    def broken(*args):
        raise RuntimeError("secret internals in model.py, line 12")

    monkeypatch.setattr(routes, "_depict", broken)
    response = client.post("/v1/depict", json={"smiles": ["CCO"]})
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "type": "internal",
            "message": "an unexpected error (logged by the server)",
            "code": 500,
        }
    }
    assert "secret" not in response.text and "Traceback" not in response.text


def test_a_molecule_that_breaks_the_model_fails_alone(make_app, monkeypatch):
    service, cfg = _fresh_property_service()
    forward = service._forward

    def fragile(mode, items):
        if any(graph.num_nodes == 6 for graph, _ in items):  # benzene breaks this model
            raise RuntimeError("shape mismatch")
        return forward(mode, items)

    monkeypatch.setattr(service.worker, "run_batch", fragile)
    client = TestClient(make_app(services=[service]))
    try:
        results = client.post("/v1/predict", json={"smiles": ["CCO", "c1ccccc1", "CC"]}).json()
    finally:
        service.close()
    ok, broken, ok2 = results["results"]
    assert ok["ok"] and ok2["ok"]
    assert broken["error"] == {"type": "model_error", "message": "shape mismatch"}


def test_api_key(make_app):
    client = TestClient(make_app(api_key="s3cret"))
    refused = client.get("/v1/models")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["error"]["type"] == "unauthorized"
    wrong = client.post("/v1/depict", json={"smiles": ["C"]}, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401
    good = client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
    assert good.status_code == 200
    assert client.get("/v1/health/live").status_code == 200  # probes need no key
    assert client.get("/v1/health/ready").status_code == 200


def test_a_non_loopback_host_needs_an_api_key(monkeypatch):
    from typer.testing import CliRunner

    from molfm.cli.main import app
    from molfm.serve.config import ServeConfig, check_serve_config, is_loopback

    monkeypatch.delenv("MOLFM_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 1
    assert "MOLFM_API_KEY" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    check_serve_config(ServeConfig(host="0.0.0.0"), "a-key")  # with a key it may start
    check_serve_config(ServeConfig(host="127.0.0.1"), None)
    assert is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_concurrent_requests_are_batched_into_one_forward_pass(monkeypatch):
    from molfm.serve.app import create_app

    service, cfg = _fresh_property_service()
    calls = []
    predict = service.model.predict

    def counted(batch, mode=None):
        calls.append(batch.num_graphs)
        return predict(batch, mode=mode)

    monkeypatch.setattr(service.model, "predict", counted)
    app = create_app([service], config=cfg, api_key="")
    requests = [["CCO", "CO", "CCN"], ["C#N", "CC=O"], ["O", "N", "CCCO"], ["CC(C)O"], ["OCCO"]]

    async def scenario():
        async with _async_client(app) as http:
            release = _block(service.worker)
            tasks = [
                asyncio.create_task(http.post("/v1/predict", json={"smiles": s})) for s in requests
            ]
            await _until(lambda: service.worker.pending == sum(map(len, requests)))
            release.set()
            together = [(await t).json() for t in tasks]
            alone = [(await http.post("/v1/predict", json={"smiles": s})).json() for s in requests]
            return together, alone

    try:
        together, alone = asyncio.run(scenario())
    finally:
        service.close()
    assert calls[0] == 10 and len(calls) == 1 + len(requests)  # one pass, then one each
    assert list(service.worker.stats.batch_sizes)[0] == 10
    for shared, single, smiles in zip(together, alone, requests):
        assert [r["smiles"] for r in shared["results"]] == smiles
        for a, b in zip(shared["results"], single["results"]):
            np.testing.assert_allclose(
                list(a["predictions"].values()), list(b["predictions"].values()), rtol=1e-5
            )
