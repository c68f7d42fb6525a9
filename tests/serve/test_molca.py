"""Naming and retrieval through the real app on tiny MolCA models built here (a 2-layer GINE, a
2-layer Q-Former from MiniLM, a tiny random Llama), equal to ``molfm name`` / ``molfm retrieve``
on the same molecules; loading in the background (ready, failed) and the models refused at
start. The shipped naming model is left out: it needs SmolLM2 (a 93 MB download and ~40 s of
conversion on first use), too slow for every CI run."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient

MOLECULES = ["CCO", "c1ccccc1", "C1CC", "CC(=O)O"]
PAIRS = [("CCO", "ethanol"), ("CO", "methanol"), ("CC(=O)O", "acetic acid"),
         ("c1ccccc1", "benzene"), ("CCN", "ethylamine"), ("not a smiles", "nothing")]  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Directories of a tiny naming model and a tiny stage-1 model, and a candidates CSV."""
    from molfm.hub import save_pretrained
    from molfm.systems.molca.lm import save_tiny_lm
    from molfm.systems.molca.model import MolCA, MolCAConfig
    from molfm.systems.molca.stage1 import MolCAStage1

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("molca-serve")
    save_tiny_lm(root / "lm", initializer_range=0.3)
    config = MolCAConfig(
        graph_encoder={"type": "gine", "config": {"num_layers": 2, "dim": 32, "dropout": 0.0}},
        qformer={"num_layers": 2, "num_query_tokens": 4, "dropout": 0.0},
        lm=str(root / "lm"),
        lm_tuning={"mode": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
    )
    torch.manual_seed(0)
    save_pretrained(MolCA.build(config).eval(), root / "tiny-namer")
    stage1 = MolCAStage1.build(
        "gine", text_pooling="mean", graph_overrides={"num_layers": 2, "dim": 32},
        qformer={"num_layers": 2}, seed=0,
    )  # fmt: skip
    save_pretrained(stage1.eval(), root / "run1" / "model")  # a run's model/: id "run1"
    candidates = root / "candidates.csv"
    pd.DataFrame(PAIRS, columns=["smiles", "text"]).to_csv(candidates, index=False)
    return root


@pytest.fixture(scope="module")
def molca_client(tiny):
    from molfm.serve.app import create_app
    from molfm.serve.config import ServeConfig
    from molfm.serve.models import load_service

    cfg = ServeConfig(accelerator="cpu", candidates=str(tiny / "candidates.csv"))
    services = [load_service(str(tiny / "tiny-namer"), cfg), load_service(str(tiny / "run1"), cfg)]
    yield TestClient(create_app(services, config=cfg, api_key=""))
    for service in services:
        service.close()


def _csv(path, smiles):
    pd.DataFrame({"smiles": smiles}).to_csv(path, index=False)
    return str(path)


def test_models_list_the_tiny_models_by_directory_name(molca_client):
    models = {m["id"]: m["tasks"] for m in molca_client.get("/v1/models").json()["models"]}
    assert models == {"tiny-namer": ["name", "embed"], "run1": ["retrieve", "embed"]}


@pytest.mark.parametrize("verify", [False, True])
def test_name_equals_molfm_name(molca_client, tiny, tmp_path, verify):
    from molfm.systems.molca.config import NameConfig
    from molfm.systems.molca.run import name_molecules

    response = molca_client.post("/v1/name", json={"smiles": MOLECULES, "verify": verify})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "tiny-namer"
    cfg = NameConfig(
        data_path=_csv(tmp_path / "m.csv", MOLECULES), model=str(tiny / "tiny-namer"),
        output=str(tmp_path / "names.csv"), on_invalid="skip", verify=verify, accelerator="cpu",
    )  # fmt: skip
    cli = name_molecules(cfg).frame.set_index("row")
    for i, item in enumerate(body["results"]):
        assert item["smiles"] == MOLECULES[i]
        if MOLECULES[i] == "C1CC":
            assert item["ok"] is False and item["error"]["type"] == "invalid_smiles"
            continue
        assert item["name"] == cli.loc[i, "name"]
        assert item["verified"] == (bool(cli.loc[i, "verified"]) if verify else None)


def _cli_hits(tiny, tmp_path, **query):
    from molfm.systems.molca.config import RetrieveConfig
    from molfm.systems.molca.run import retrieve_hits

    cfg = RetrieveConfig(
        data_path=str(tiny / "candidates.csv"), model=str(tiny / "run1"), top_k=2,
        output=str(tmp_path / "hits.csv"), on_invalid="skip", accelerator="cpu", **query,
    )  # fmt: skip
    frame = retrieve_hits(cfg).frame  # without re-ranking "match" is NaN; JSON leaves it out
    return frame.astype(object).where(frame.notna(), None)


def _flat(body, column):
    return [
        {"query": r["query"], "rank": k + 1, "row": h["row"], column: h[column]}
        | {"score": h["score"], "cosine": h["cosine"], "match": h.get("match")}
        for r in body["results"]
        if r["ok"]
        for k, h in enumerate(r["hits"])
    ]


def test_retrieve_text_to_molecule_equals_molfm_retrieve(molca_client, tiny, tmp_path):
    texts = ["ethanol", "an aromatic ring"]
    body = molca_client.post("/v1/retrieve", json={"text": texts, "top_k": 2}).json()
    assert body["model"] == "run1" and body["direction"] == "text-to-molecule"
    assert [r["query"] for r in body["results"]] == texts
    cli = _cli_hits(tiny, tmp_path, text=texts)
    assert _flat(body, "smiles") == cli.to_dict("records")
    # the same candidates sent in the request (the bad one left out, rows keep positions)
    inline = {"text": texts, "top_k": 2, "candidates": [s for s, _ in PAIRS]}
    assert molca_client.post("/v1/retrieve", json=inline).json() == body


def test_retrieve_molecule_to_text_equals_molfm_retrieve(molca_client, tiny, tmp_path):
    body = molca_client.post("/v1/retrieve", json={"smiles": ["CCO", "C1CC", "CO"], "top_k": 2})
    results = body.json()["results"]
    assert results[1] == {
        "ok": False,
        "query": "C1CC",
        "error": {"type": "invalid_smiles", "message": "unclosed ring"},
    }
    cli = _cli_hits(tiny, tmp_path, smiles=["CCO", "CO"])
    assert _flat(body.json(), "text") == cli.to_dict("records")


def test_retrieve_without_candidates_is_422(tiny):
    from molfm.serve.app import create_app
    from molfm.serve.config import ServeConfig
    from molfm.serve.models import load_service

    cfg = ServeConfig(accelerator="cpu")
    service = load_service(str(tiny / "run1" / "model"), cfg)
    try:
        client = TestClient(create_app([service], config=cfg, api_key=""))
        response = client.post("/v1/retrieve", json={"text": ["ethanol"]})
    finally:
        service.close()
    assert response.status_code == 422 and response.json()["error"]["type"] == "no_candidates"


def test_models_load_in_the_background_and_a_failure_is_reported(tiny, tmp_path):
    from molfm.serve.app import create_app
    from molfm.serve.config import ServeConfig

    broken = tmp_path / "broken"  # a property checkpoint without its weights
    broken.mkdir()
    config = json.loads((tiny / "run1" / "model" / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps(config | {"model_type": "property"}))
    cfg = ServeConfig(accelerator="cpu", models=[str(tiny / "run1"), str(broken)])
    with TestClient(create_app(cfg, api_key="")) as client:  # the lifespan closes the workers
        deadline = time.monotonic() + 60
        while client.get("/v1/health/ready").json()["status"] == "loading":
            assert time.monotonic() < deadline, "models still loading after 60 s"
            time.sleep(0.05)
        ready = client.get("/v1/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "failed"
        models = {m["id"]: m for m in client.get("/v1/models").json()["models"]}
        assert models["run1"]["status"] == "ready" and models["broken"]["status"] == "failed"
        refused = client.post("/v1/predict", json={"model": "broken", "smiles": ["C"]})
        assert refused.status_code == 503
        assert refused.json()["error"]["type"] == "model_unavailable"


def test_models_no_endpoint_serves_are_refused_at_start(tmp_path):
    from typer.testing import CliRunner

    from molfm.cli.main import app

    for models in (["gps-3dpgt-small-qm9"], [str(tmp_path / "missing")]):
        args = ["serve", "--port", "1"] + [a for m in models for a in ("--models", m)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1 and result.output.startswith("error:"), result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize("model", ["tiny-namer", "run1"])
def test_molca_models_embed(molca_client, model):
    """MolCA's vectors: one per readable molecule, the same length, the bad one failing alone."""
    response = molca_client.post(
        "/v1/embed", json={"model": model, "smiles": ["CCO", "xyz", "c1ccccc1"]}
    )
    assert response.status_code == 200
    body = response.json()
    ok = [item for item in body["results"] if item["ok"]]
    assert [item["ok"] for item in body["results"]] == [True, False, True]
    assert all(len(item["embedding"]) == body["dim"] > 0 for item in ok)
    assert ok[0]["embedding"] != ok[1]["embedding"]
