"""``POST /v1/embed``: one vector per molecule from any loaded model, the vectors ``molfm
embed`` writes (the same :class:`~molfm.scale.batches.Embedder` over the model the server has
loaded already).

Embedding runs in the request's thread, beside the model's worker: a forward pass in
inference mode changes nothing in the model, and a request holds at most
``--max-embed-items`` molecules.
"""

from __future__ import annotations

import threading
from typing import Any

from molfm.scale.batches import Embedder

__all__ = ["embed_items"]

_KINDS = {"property": "graph", "gp-molformer": "smiles", "molca": "molca", "molca-stage1": "molca"}
_lock = threading.Lock()


def _embedder(service: Any) -> Embedder:
    """The service's embedder, built on its loaded model the first time."""
    with _lock:
        if getattr(service, "embedder", None) is None:
            tokenizer = getattr(service, "tokenizer", None)  # a SMILES model keeps its own
            model = service.model if tokenizer is None else (service.model, tokenizer)
            service.embedder = Embedder(
                model,
                _KINDS[service.kind],
                batch_size=64,
                device=service.device,
                precision=service.cfg.precision,
            )
        return service.embedder


def _embed(service: Any, smiles: list[str], mode: str) -> tuple[int, list[dict[str, Any]]]:
    from molfm.serve.models import _featurize, item_error
    from molfm.tasks.config import encoder_mode

    embedder = _embedder(service)
    good, results = _featurize(smiles)
    rejected: list[dict] = []
    readable = embedder.readable(good, rejected)
    for item in rejected:
        results[item["row"]] = item_error(item["smiles"], "unreadable", item["reason"])
    if embedder.kind == "graph":
        embedder.mode = encoder_mode(mode)
    vectors = embedder.vectors(readable)
    for (row, _, _), vector in zip(readable, vectors):
        results[row] = {"ok": True, "smiles": smiles[row], "embedding": vector.tolist()}
    return int(vectors.shape[1]) if len(readable) else embedder.dim, [
        results[i] for i in range(len(smiles))
    ]


async def embed_items(service: Any, smiles: list[str], mode: str, deadline: Any) -> dict:
    """The embed response for ``smiles`` (per-item results in input order)."""
    dim, results = await deadline.thread(_embed, service, smiles, mode)
    return {"model": service.id, "dim": dim, "results": results}
