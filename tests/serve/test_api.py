"""Every endpoint through the real app on the shipped models (transformer-m-small-qm9,
gp-molformer-small-moses): answers equal to the CLI's library functions for the same molecules
and seeds, per-item errors, and health and model listings."""

from __future__ import annotations

import math

import pandas as pd
import pytest

PROPERTY, SAMPLER = "transformer-m-small-qm9", "gp-molformer-small-moses"
# valid, unparsable, out of domain (Cl; 12 heavy atoms), an aromatic ring, a charged molecule
MOLECULES = ["CCO", "C1CC", "CCCl", "CCCCCCCCCCCC", "c1ccccc1", "xyz", "C[NH3+]", "O=C1CCC1"]


def test_health_and_models(client):
    assert client.get("/v1/health/live").json() == {"status": "live"}
    assert client.get("/v1/health/ready").json() == {"status": "ready"}
    body = client.get("/v1/models").json()
    models = {m["id"]: m for m in body["models"]}
    assert list(models) == [PROPERTY, SAMPLER]
    prop = models[PROPERTY]
    assert prop["tasks"] == ["predict", "embed"] and prop["status"] == "ready"
    assert prop["system"] == "transformer-m"
    assert prop["targets"] == [{"name": t, "unit": "eV"} for t in ("homo", "lumo", "gap")]
    assert prop["domain"]["max_atoms"] == 9
    assert prop["limits"]["max_items"] == 1000 and prop["limits"]["max_batch"] == 64
    assert models[SAMPLER]["tasks"] == ["generate", "decorate", "embed"]
    assert models[SAMPLER]["limits"]["max_num_molecules"] == 10_000
    limits = body["limits"]
    assert limits["max_body_bytes"] == 1 << 20 and limits["max_smiles_length"] == 500
    assert limits["max_items"] == {
        "predict": 1000,
        "predict_with_conformers": 64,
        "name": 64,
        "depict": 1000,
        "embed": 1000,
        "retrieve": 64,
    }
    assert limits["timeout_s"] == 60 and limits["queue_depth"] == 1024


def test_openapi_and_docs(client):
    schema = client.get("/openapi.json").json()
    for path in ("/v1/predict", "/v1/generate", "/v1/decorate", "/v1/name", "/v1/retrieve"):
        assert "post" in schema["paths"][path]
    assert client.get("/docs").status_code == 200


def test_predict_equals_molfm_predict(client, tmp_path):
    from molfm.scale.run import predict
    from molfm.tasks.config import PredictConfig

    response = client.post("/v1/predict", json={"model": PROPERTY, "smiles": MOLECULES})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == PROPERTY and len(body["results"]) == len(MOLECULES)
    assert [r["smiles"] for r in body["results"]] == MOLECULES  # input order, every item

    data = tmp_path / "molecules.csv"
    pd.DataFrame({"smiles": MOLECULES}).to_csv(data, index=False)
    cfg = PredictConfig(
        data_path=str(data), output=str(tmp_path / "p.csv"), on_invalid="skip", accelerator="cpu"
    )
    cli = predict(cfg)
    invalid = pd.read_csv(cli.invalid_path)
    rejected = dict(zip(invalid["row"], invalid["reason"]))
    written = pd.read_csv(cli.output, keep_default_na=False)
    rows = {int(r["row"]): r for r in written.to_dict("records")}
    assert set(rejected) | set(rows) == set(range(len(MOLECULES)))
    for i, item in enumerate(body["results"]):
        if i in rejected:
            assert item["ok"] is False and item["error"]["type"] == "invalid_smiles"
            assert item["error"]["message"] == rejected[i]
            continue
        row = rows[i]
        assert item["ok"] is True
        assert item["predictions"] == {t: row[t] for t in ("homo", "lumo", "gap")}  # exact
        assert item["units"] == {"homo": "eV", "lumo": "eV", "gap": "eV"}
        assert item["out_of_domain"] == row["out_of_domain"]
        assert item["domain_reason"] == (row["domain_reason"] if row["out_of_domain"] else "")
        assert item["used_3d"] == row["used_3d"]
    flags = {MOLECULES[i]: r["out_of_domain"] for i, r in enumerate(body["results"]) if r["ok"]}
    assert flags["CCCl"] and flags["CCCCCCCCCCCC"] and not flags["CCO"]


def test_predict_modes_and_conformers(client):
    two_d = client.post("/v1/predict", json={"smiles": ["CCO"], "mode": "2d"}).json()
    assert two_d["model"] == PROPERTY and two_d["results"][0]["used_3d"] is False
    refused = client.post("/v1/predict", json={"smiles": ["CCO"], "mode": "3d"})
    assert refused.status_code == 422
    assert "conformers" in refused.json()["error"]["message"]
    body = client.post(
        "/v1/predict", json={"smiles": ["CCO", "C1CC"], "mode": "3d", "conformers": True}
    ).json()
    first, second = body["results"]
    assert first["ok"] and first["used_3d"] is True
    assert all(math.isfinite(v) for v in first["predictions"].values())
    assert first["predictions"] != two_d["results"][0]["predictions"]
    assert second["ok"] is False and second["error"]["type"] == "invalid_smiles"


def _frame_rows(frame: pd.DataFrame, columns: list[str]) -> list[dict]:
    rows = frame[columns].astype(object).where(frame[columns].notna(), None)
    return [{"ok": True} | r for r in rows.to_dict("records")]


def test_generate_equals_molfm_generate(client, tmp_path):
    from molfm.systems.gp_molformer.config import GenerateConfig
    from molfm.systems.gp_molformer.run import generate

    request = {"model": SAMPLER, "num_molecules": 40, "seed": 7, "temperature": 1.1}
    first = client.post("/v1/generate", json=request).json()
    again = client.post("/v1/generate", json=request).json()
    assert first == again  # a seed gives the same molecules
    cfg = GenerateConfig(
        n=40, seed=7, temperature=1.1, output=str(tmp_path / "g.csv"), accelerator="cpu"
    )
    frame, summary = generate(cfg)
    columns = ["smiles", "canonical_smiles", "valid", "truncated"]
    assert first["results"] == _frame_rows(frame, columns)  # the CSV's rows
    for key in ("n", "validity", "uniqueness", "truncated"):
        assert first["summary"][key] == summary[key]
    other = client.post("/v1/generate", json=request | {"seed": 8}).json()
    assert other["results"] != first["results"]


def test_decorate_equals_molfm_decorate(client, tmp_path):
    from molfm.systems.gp_molformer.config import DecorateConfig
    from molfm.systems.gp_molformer.run import decorate

    scaffold = "c1ccc(cc1)[*]"
    request = {"scaffold": scaffold, "num_molecules": 12, "seed": 3, "top_k": 20}
    body = client.post("/v1/decorate", json=request).json()
    assert body["model"] == SAMPLER
    cfg = DecorateConfig(
        scaffold=[scaffold], n=12, seed=3, top_k=20, output=str(tmp_path / "d.csv"),
        accelerator="cpu",
    )  # fmt: skip
    frame, (report,) = decorate(cfg)
    columns = ["smiles", "canonical_smiles", "valid", "keeps_scaffold"]
    assert body["results"] == _frame_rows(frame, columns)
    assert body["summary"] == {k: v for k, v in report.items() if k != "scaffold"}
    for bad in ("c1ccccc1", "C1CC[*]"):  # no attachment point; does not parse
        refused = client.post("/v1/decorate", json={"scaffold": bad, "num_molecules": 2})
        assert refused.status_code == 422
        assert refused.json()["error"]["type"] == "invalid_scaffold"


def test_depict(client):
    body = client.post("/v1/depict", json={"smiles": ["CCO", "C1CC", "c1ccc(cc1)[*]"]}).json()
    ok, bad, scaffold = body["results"]
    assert ok["ok"] and ok["svg"].startswith("<svg") and ok["svg"].rstrip().endswith("</svg>")
    assert "width='300px'" in ok["svg"]
    assert bad == {
        "ok": False,
        "smiles": "C1CC",
        "error": {"type": "invalid_smiles", "message": "unclosed ring"},
    }
    assert scaffold["ok"]
    sized = client.post("/v1/depict", json={"smiles": ["CCO"], "width": 120, "height": 90})
    assert "width='120px'" in sized.json()["results"][0]["svg"]
    assert client.post("/v1/depict", json={"smiles": ["CCO"], "width": 10}).status_code == 422


def test_the_page_is_served_at_the_root(client):
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()


@pytest.mark.parametrize(
    "path, body, kind",
    [
        ("/v1/predict", {"model": "no-such-model", "smiles": ["CCO"]}, "unknown_model"),
        ("/v1/predict", {"model": SAMPLER, "smiles": ["CCO"]}, "unknown_model"),
        ("/v1/generate", {"model": PROPERTY}, "unknown_model"),
        ("/v1/name", {"smiles": ["CCO"]}, "unknown_model"),
        ("/v1/predict", {"smiles": "CCO"}, "invalid_request"),
        ("/v1/predict", {"smiles": ["CCO"], "mode": "4d"}, "invalid_request"),
        ("/v1/predict", {"smiles": ["CCO"], "conformer": True}, "invalid_request"),
        ("/v1/predict", {"model": "../../etc", "smiles": ["CCO"]}, "unknown_model"),
        ("/v1/generate", {"num_molecules": 0}, "invalid_request"),
        ("/v1/generate", {"top_p": 1.5}, "invalid_request"),
        ("/v1/generate", {"top_p": 1e-300}, "invalid_request"),  # float32: every token dropped
        ("/v1/decorate", {"scaffold": "C[*]", "temperature": 1e-300}, "invalid_request"),
        ("/v1/retrieve", {"text": ["x"], "smiles": ["C"]}, "invalid_request"),
    ],
)
def test_bad_requests_are_422_with_one_error_shape(client, path, body, kind):
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == kind and error["code"] == 422 and error["message"]


def test_malformed_json_and_unknown_routes(client):
    response = client.post(
        "/v1/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["error"]["type"] == "invalid_request"
    assert client.get("/v1/nothing").json()["error"]["type"] == "not_found"
    assert client.get("/v1/predict").json()["error"]["code"] == 405


@pytest.mark.parametrize("model", [PROPERTY, SAMPLER])
def test_embed_equals_molfm_embed(client, tmp_path, model):
    """The server's vectors are molfm embed's, bit for bit; unreadable molecules fail alone."""
    import numpy as np

    from molfm.scale.config import EmbedConfig
    from molfm.scale.run import embed

    response = client.post("/v1/embed", json={"model": model, "smiles": MOLECULES})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == model and len(body["results"]) == len(MOLECULES)
    data = tmp_path / "molecules.csv"
    pd.DataFrame({"smiles": MOLECULES}).to_csv(data, index=False)
    cfg = EmbedConfig(
        model=model,
        data_path=str(data),
        output=str(tmp_path / "e.parquet"),
        on_invalid="skip",
        accelerator="cpu",
        mode="2d",
    )
    written = pd.read_parquet(embed(cfg).output)
    vectors = dict(zip(written["row"], written["embedding"]))
    for i, item in enumerate(body["results"]):
        assert item["smiles"] == MOLECULES[i]
        if i not in vectors:
            assert item["ok"] is False
            continue
        assert item["ok"] is True and len(item["embedding"]) == body["dim"]
        np.testing.assert_array_equal(np.array(item["embedding"], dtype=np.float32), vectors[i])
    assert not body["results"][1]["ok"] and not body["results"][5]["ok"]  # C1CC, xyz


def test_embed_limits_and_modes(client):
    too_many = {"model": PROPERTY, "smiles": ["C"] * 1001}
    assert client.post("/v1/embed", json=too_many).status_code == 422
    three_d = client.post("/v1/embed", json={"model": PROPERTY, "smiles": ["CCO"], "mode": "3d"})
    assert three_d.status_code == 422 and "3D" in three_d.json()["error"]["message"]
