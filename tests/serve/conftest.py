"""Fixtures of the server tests: the shipped models loaded once for the session, and apps over
them (loopback only: TestClient and httpx's ASGI transport call the app in process)."""

from __future__ import annotations

import pytest
import torch

SHIPPED = ("transformer-m-small-qm9", "gp-molformer-small-moses")


@pytest.fixture(scope="session")
def serve_config():
    from molfm.serve.config import ServeConfig

    return ServeConfig(accelerator="cpu", models=list(SHIPPED), log_level="warning")


@pytest.fixture(scope="session")
def shipped_services(serve_config):
    """``{name: Service}`` for the shipped property and generation models (one worker each)."""
    from molfm.serve.models import load_service

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models on a shared 2-core machine
    services = {name: load_service(name, serve_config) for name in SHIPPED}
    yield services
    for service in services.values():
        service.close()
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def make_app(shipped_services, serve_config):
    """``make_app(services=None, api_key="", **limits)``: an app over the shipped services (or
    the given ones), its config's limits replaced by ``limits``."""
    import dataclasses

    from molfm.serve.app import create_app

    def make(services=None, api_key="", **limits):
        config = dataclasses.replace(serve_config, **limits)
        chosen = list(shipped_services.values()) if services is None else services
        return create_app(chosen, config=config, api_key=api_key)

    return make


@pytest.fixture(scope="session")
def client(make_app):
    from fastapi.testclient import TestClient

    return TestClient(make_app())
