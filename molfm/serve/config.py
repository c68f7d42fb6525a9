"""The flags of ``molfm serve``: where it listens, which models it loads, and its limits.

Each field is one flag (:func:`molfm.engine.options.option`); the limits are published by
``GET /v1/models`` so a client can size its requests. Pure Python (no torch, no web framework),
so the CLI builds its flags without loading anything.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from molfm.engine.options import HardwareOptions, cache_dir_option, check_options, option
from molfm.systems.gp_molformer.config import DEFAULT_SMILES_MODEL
from molfm.systems.molca import NAMING_MODEL, RETRIEVAL_MODEL
from molfm.tasks.config import DEFAULT_PROPERTY_MODEL

__all__ = ["DEFAULT_MODELS", "API_KEY_ENV", "ServeConfig", "is_loopback", "check_serve_config"]

DEFAULT_MODELS = (DEFAULT_SMILES_MODEL, DEFAULT_PROPERTY_MODEL, NAMING_MODEL, RETRIEVAL_MODEL)
"""What ``molfm serve`` loads without ``--models``: generation and decoration, property
prediction, IUPAC naming and molecule <-> name retrieval (the shipped checkpoints of
``molfm/assets/``)."""
API_KEY_ENV = "MOLFM_API_KEY"
"""The environment variable holding the API key (``Authorization: Bearer <key>``)."""


@dataclass(kw_only=True)
class ServeConfig(HardwareOptions):
    """Everything ``molfm serve`` depends on."""

    host: str = option(
        "127.0.0.1",
        help=f"Address to bind. Anything but a loopback address needs ${API_KEY_ENV}.",
    )
    port: int = option(8000, min=0, max=65535, help="Port to listen on (0: any free port).")
    models: list[str] = option(
        default_factory=lambda: list(DEFAULT_MODELS),
        flags=("--models",),
        help="A shipped model name or a model/ directory to serve (repeat for several; "
        "default: the shipped generation, property, naming and retrieval models). Requests "
        "name a model by this name or the directory's basename.",
    )
    candidates: str | None = option(
        None,
        path="file",
        exists=True,
        help="Retrieval candidates: a CSV with a 'smiles' and/or a 'text' column, used when a "
        "retrieve request brings none.",
    )
    max_predict_items: int = option(1000, min=1, help="Molecules per predict request.")
    max_conformer_items: int = option(
        64,
        min=1,
        help="Molecules per predict request with conformers (each takes up to seconds of CPU, "
        "which a timed-out request does not give back).",
    )
    max_name_items: int = option(64, min=1, help="Molecules per name request.")
    max_depict_items: int = option(1000, min=1, help="Molecules per depict request.")
    max_embed_items: int = option(1000, min=1, help="Molecules per embed request.")
    max_retrieve_items: int = option(64, min=1, help="Queries per retrieve request.")
    max_candidates: int = option(
        1000, min=1, help="Candidates a retrieve request may bring (the --candidates file: any)."
    )
    max_num_molecules: int = option(
        10_000, min=1, help="num_molecules of a generate or decorate request."
    )
    max_smiles_length: int = option(500, min=1, help="Characters of one SMILES.")
    max_body_bytes: int = option(1 << 20, min=1024, help="Bytes of a request body.")
    timeout_s: float = option(60.0, positive=True, help="Seconds a request may take.")
    queue_depth: int = option(
        1024, min=1, help="Molecules (or whole jobs) waiting per model; more answers 429."
    )
    batch_wait_ms: float = option(
        5.0, min=0.0, help="How long a model's worker waits to fill a batch, in ms."
    )
    predict_batch_size: int = option(
        64, min=1, help="Molecules per forward pass of a property model (molfm predict's)."
    )
    name_batch_size: int = option(
        16, min=1, help="Molecules per beam search of a naming model (molfm name's)."
    )
    sample_batch_size: int = option(
        256, min=1, help="Sequences sampled together (molfm generate's; it changes the samples)."
    )
    cors_origins: list[str] = option(
        default_factory=list,
        flags=("--cors-origin",),
        help="An origin allowed to call the API from a browser (repeat; default: none).",
    )
    log_level: str = option(
        "info", choices=("critical", "error", "warning", "info", "debug"), help="Log level."
    )
    torch_threads: int | None = option(
        None,
        min=1,
        help="CPU threads of torch's operations (default: torch's choice). 1 is best for a CPU "
        "server: a second thread spins, doubling the CPU per request for no throughput.",
    )
    cache_dir: str | None = cache_dir_option()  # where SmolLM2 and MiniLM are fetched to

    def __post_init__(self) -> None:
        super().__post_init__()
        self.models = list(self.models or DEFAULT_MODELS)
        self.cors_origins = list(self.cors_origins or [])

    def limits(self) -> dict[str, Any]:
        """The request limits every model shares (``GET /v1/models``'s ``limits``)."""
        return {
            "max_body_bytes": self.max_body_bytes,
            "max_smiles_length": self.max_smiles_length,
            "timeout_s": self.timeout_s,
            "queue_depth": self.queue_depth,
            "max_items": {
                "predict": self.max_predict_items,
                "predict_with_conformers": self.max_conformer_items,
                "name": self.max_name_items,
                "depict": self.max_depict_items,
                "embed": self.max_embed_items,
                "retrieve": self.max_retrieve_items,
            },
            "max_candidates": self.max_candidates,
            "max_num_molecules": self.max_num_molecules,
        }


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost`` (reachable from this machine
    only)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_serve_config(cfg: ServeConfig, api_key: str | None) -> None:
    """The declared ranges, and the API key rule.

    Raises
    ------
    ValueError
        One line: a value out of range, or a non-loopback ``host`` without an API key.
    """
    check_options(cfg)
    if not is_loopback(cfg.host) and not api_key:
        raise ValueError(
            f"--host {cfg.host} is reachable from other machines: set {API_KEY_ENV} to a secret "
            "(clients send 'Authorization: Bearer <key>'), or bind 127.0.0.1"
        )
