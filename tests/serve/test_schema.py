"""Schemathesis over ``/openapi.json``: requests generated from the schema, valid (positive) and
invalid (negative), never get a 5xx, and every error has the one error shape. Few examples per
operation, derandomized, small limits (so a generated request stays fast), the shipped models
over the in-process ASGI transport."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

EXAMPLES = 10  # per operation and mode


def _check(case) -> None:
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.path} {case.body!r}: {response.text}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] == response.status_code and error["type"] and error["message"]


def test_generated_requests_never_get_a_server_error(make_app):
    app = make_app(
        max_predict_items=4,
        max_depict_items=4,
        max_name_items=4,
        max_retrieve_items=4,
        max_candidates=4,
        max_num_molecules=4,
        max_smiles_length=40,
        max_body_bytes=4096,
        timeout_s=20.0,
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/predict", "/v1/generate", "/v1/depict"}
    for operation in operations:
        modes = [GenerationMode.POSITIVE]
        if operation.method.lower() == "post":  # a GET without parameters has no invalid form
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case) -> None:
                _check(case)

            run()
