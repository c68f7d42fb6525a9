"""The JSON of ``molfm serve``: one pydantic model per request and response (OpenAPI at
``/openapi.json``).

A request names its model by id (``model``; left out, the first loaded model that serves the
endpoint); it never carries a path. Unknown fields are refused (422), so a misspelt option is
not silently ignored. A response lists one result per input item, in input order: ``ok: true``
with the item's output, or ``ok: false`` with ``error: {type, message}``: one bad molecule
never fails the request. Whole-request errors have one shape, :class:`ErrorResponse`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from molfm.chem.depict import MAX_SIZE, MIN_SIZE

__all__ = [
    "ErrorBody",
    "ErrorResponse",
    "ItemError",
    "Health",
    "ModelInfo",
    "ModelsResponse",
    "PredictRequest",
    "PredictResponse",
    "GenerateRequest",
    "DecorateRequest",
    "GenerateResponse",
    "DecorateResponse",
    "NameRequest",
    "NameResponse",
    "RetrieveRequest",
    "RetrieveResponse",
    "DepictRequest",
    "DepictResponse",
    "EmbedRequest",
    "EmbedResponse",
]

ModelId = Field(
    None,
    max_length=200,
    description="A model id from GET /v1/models; default: the first model serving the endpoint.",
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class _Response(BaseModel):
    model_config = ConfigDict(protected_namespaces=())


# --- errors and health -------------------------------------------------------------------------
class ErrorBody(_Response):
    type: str = Field(description="What went wrong, e.g. invalid_request, queue_full, timeout.")
    message: str
    code: int = Field(description="The HTTP status code.")


class ErrorResponse(_Response):
    """Every whole-request error (4xx, 5xx)."""

    error: ErrorBody


class ItemError(_Response):
    type: str = Field(description="e.g. invalid_smiles, no_conformer, model_error.")
    message: str


class Failed(_Response):
    ok: Literal[False] = False
    smiles: str
    error: ItemError


class Health(_Response):
    status: str = Field(description="live, ready, loading or failed.")
    message: str | None = None


# --- models ------------------------------------------------------------------------------------
class Target(_Response):
    name: str
    unit: str | None = None


class ModelInfo(_Response):
    id: str
    system: str
    status: str = Field(description="loading, ready or failed.")
    tasks: list[str] = Field(description="Endpoints it serves: predict, generate, decorate, ...")
    targets: list[Target] = Field(default_factory=list, description="Property models' outputs.")
    domain: dict[str, Any] | None = Field(None, description="What its training data covered.")
    limits: dict[str, Any] = Field(default_factory=dict)
    message: str | None = Field(None, description="Why it failed to load.")


class ModelsResponse(_Response):
    models: list[ModelInfo]
    limits: dict[str, Any]


# --- predict -----------------------------------------------------------------------------------
class PredictRequest(_Request):
    model: str | None = ModelId
    smiles: list[str] = Field(description="The molecules, answered in this order.")
    mode: Literal["available", "2d", "3d", "2d3d"] = Field(
        "available",
        description="Channels: every channel a molecule has data for, or one mode (3D needs "
        "conformers).",
    )
    conformers: bool = Field(
        False, description="Generate an RDKit conformer per molecule so 3D channels are used."
    )


class Predicted(_Response):
    ok: Literal[True] = True
    smiles: str
    predictions: dict[str, float | None] = Field(description="Target -> value (in its unit).")
    units: dict[str, str | None]
    out_of_domain: bool = Field(description="An element or a size never seen in training.")
    domain_reason: str
    used_3d: bool


class PredictResponse(_Response):
    model: str
    results: list[Predicted | Failed]


# --- generate / decorate -----------------------------------------------------------------------
class _Sampling(_Request):
    model: str | None = ModelId
    num_molecules: int = Field(100, ge=1, description="How many molecules to sample.")
    seed: int = Field(0, ge=-(2**63), lt=2**63, description="The same seed, the same molecules.")
    temperature: float = Field(
        1.0, ge=0.0, le=100.0, description="0: greedy decoding; else at least 0.001."
    )
    top_k: int | None = Field(None, ge=1, le=100_000)
    # below 1e-6 (float32 rounds tiny p to 0) the sampler would drop every token
    top_p: float | None = Field(None, ge=1e-6, le=1.0)

    @field_validator("temperature")
    @classmethod
    def _not_tiny(cls, value: float) -> float:
        # logits divided by a tiny temperature overflow float32 (inf, then NaN probabilities)
        if 0.0 < value < 1e-3:
            raise ValueError("temperature must be 0 (greedy decoding) or at least 0.001")
        return value


class GenerateRequest(_Sampling):
    syntax_mask: bool = Field(False, description="Ban tokens that break SMILES syntax.")


class DecorateRequest(_Sampling):
    scaffold: str = Field(description="A scaffold SMILES with [*] attachment points.")


class Sample(_Response):
    ok: Literal[True] = True
    smiles: str = Field(description="As sampled (kept when it is not a valid molecule).")
    canonical_smiles: str | None = Field(description="RDKit's; null when not valid.")
    valid: bool


class Generated(Sample):
    truncated: bool = Field(description="Stopped at the longest sequence before its end.")


class Decorated(Sample):
    keeps_scaffold: bool


class GenerateResponse(_Response):
    model: str
    results: list[Generated]
    summary: dict[str, float | int | None] = Field(
        description="n, validity, uniqueness, truncated: what molfm generate prints."
    )


class DecorateResponse(_Response):
    model: str
    results: list[Decorated]
    summary: dict[str, float | int | None] = Field(
        description="n, validity, uniqueness, keeps_scaffold, unique_keeping_scaffold: what "
        "molfm decorate prints."
    )


# --- name --------------------------------------------------------------------------------------
class NameRequest(_Request):
    model: str | None = ModelId
    smiles: list[str]
    verify: bool = Field(False, description="Keep the first beam OPSIN parses to the input.")


class Named(_Response):
    ok: Literal[True] = True
    smiles: str
    name: str
    verified: bool | None = Field(None, description="With verify: OPSIN gives the input back.")


class NameResponse(_Response):
    model: str
    results: list[Named | Failed]


# --- retrieve ----------------------------------------------------------------------------------
class RetrieveRequest(_Request):
    model: str | None = ModelId
    text: list[str] | None = Field(None, description="Text queries: find molecules.")
    smiles: list[str] | None = Field(None, description="Molecule queries: find texts.")
    top_k: int = Field(5, ge=1, le=100, description="Hits per query.")
    candidates: list[str] | None = Field(
        None,
        description="What to search (SMILES for text queries, texts for molecule queries); "
        "default: the server's --candidates file.",
    )


class Hit(_Response):
    smiles: str | None = None
    text: str | None = None
    row: int = Field(description="The candidate's position in the candidate list or file.")
    score: float | None = Field(description="cosine + match: the ranking key.")
    cosine: float | None
    match: float | None = Field(description="The matching head's log-odds.")


class Retrieved(_Response):
    ok: Literal[True] = True
    query: str
    hits: list[Hit]


class RetrieveFailed(_Response):
    ok: Literal[False] = False
    query: str
    error: ItemError


class RetrieveResponse(_Response):
    model: str
    direction: Literal["text-to-molecule", "molecule-to-text"]
    results: list[Retrieved | RetrieveFailed]


# --- embed -------------------------------------------------------------------------------------
class EmbedRequest(_Request):
    model: str | None = ModelId
    smiles: list[str] = Field(description="The molecules, answered in this order.")
    mode: Literal["available", "2d", "3d", "2d3d"] = Field(
        "2d",
        description="Transformer-M's channels (SMILES have no coordinates: 3D modes need a "
        "3D model's conformers, which embed does not generate).",
    )


class Embedded(_Response):
    ok: Literal[True] = True
    smiles: str
    embedding: list[float] = Field(description="The molecule's vector (molfm embed's).")


class EmbedResponse(_Response):
    model: str
    dim: int = Field(description="Length of every embedding.")
    results: list[Embedded | Failed]


# --- depict ------------------------------------------------------------------------------------
class DepictRequest(_Request):
    smiles: list[str]
    width: int = Field(300, ge=MIN_SIZE, le=MAX_SIZE)
    height: int = Field(200, ge=MIN_SIZE, le=MAX_SIZE)


class Depicted(_Response):
    ok: Literal[True] = True
    smiles: str
    svg: str


class DepictResponse(_Response):
    results: list[Depicted | Failed]
