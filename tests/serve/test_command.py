"""The ``molfm serve`` command itself, in a subprocess on 127.0.0.1: it starts uvicorn, loads
its model in the background, asks for the API key when one is set, and stops cleanly on Ctrl+C
(SIGINT). Every wait is bounded."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

READY_S = 120.0  # importing torch and loading the model on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_molfm_serve_serves_until_stopped():
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, MOLFM_API_KEY="k3y", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "molfm.cli.main", "serve", "--port", str(port)]
    command += ["--models", "transformer-m-small-qm9", "--log-level", "warning"]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    key = {"Authorization": "Bearer k3y"}
    try:
        deadline = time.monotonic() + READY_S
        while True:
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "molfm serve not ready in time"
            try:
                if httpx.get(f"{url}/v1/health/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        body = {"smiles": ["CCO", "C1CC"]}
        assert httpx.post(f"{url}/v1/predict", json=body, timeout=30).status_code == 401
        response = httpx.post(f"{url}/v1/predict", json=body, headers=key, timeout=30)
        assert response.status_code == 200
        ok, bad = response.json()["results"]
        assert ok["ok"] and set(ok["predictions"]) == {"homo", "lumo", "gap"}
        assert bad["error"]["type"] == "invalid_smiles"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    assert server.returncode == 0, server.stdout.read()


def test_torch_threads_is_set_before_the_server_starts(monkeypatch):
    import torch
    import uvicorn

    from molfm.serve.app import serve
    from molfm.serve.config import ServeConfig

    seen = {}
    monkeypatch.setattr(
        uvicorn, "run", lambda app, **kw: seen.update(threads=torch.get_num_threads())
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # so that the flag, not the environment, makes it 1
    try:
        serve(ServeConfig(models=["transformer-m-small-qm9"], torch_threads=1))
    finally:
        torch.set_num_threads(before)
    assert seen["threads"] == 1
