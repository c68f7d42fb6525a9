"""Property optimization with a pair-tuned soft prompt, and its evaluation report.

:func:`optimize` runs the pair-tuning layout (:mod:`molfm.systems.gp_molformer.pair_tuning.training`) in the
recurrent form of GP-MoLFormer, O(1) per token:

1. the ``P`` prompt vectors go through :meth:`GPMoLFormer.embed_step` once (positions
   ``0..P-1``); the resulting state is shared by every source;
2. per source, ``<bos> source <eos>`` is forced token by token (positions ``P..``);
3. the state is expanded to ``n_candidates`` rows and each row samples target tokens until
   ``<eos>`` or ``max_length`` target tokens (finished rows leave the batch).

Candidates of source ``i`` are drawn from a ``torch.Generator`` seeded with
``SeedSequence([seed, i])``: they depend on the seed, the position ``i`` and the source, not
on the other sources in the list.

:func:`optimization_report` follows the evaluation of Jin et al. (2019), which GP-MoLFormer
reports: for each source and similarity threshold ``delta``, the eligible candidates are the
valid ones with ``delta <= sim < 1`` (``sim = 1`` is the source itself or a fingerprint twin);
the source's improvement is the best eligible improvement, floored at 0 (keeping the source
is always possible), and 0 when no candidate is eligible. Mean, std (population) and median
are over all sources; the success rate is the fraction of sources with an eligible candidate
that strictly improves the property.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from rdkit import Chem

from molfm.chem.fingerprints import bulk_tanimoto
from molfm.chem.parse import canonical_smiles, mol_or_none
from molfm.systems.gp_molformer.model import GPMoLFormer, State
from molfm.systems.gp_molformer.pair_tuning.pairs import (
    property_function,
    similarity_fingerprints,
)
from molfm.systems.gp_molformer.pair_tuning.training import SoftPrompt
from molfm.systems.gp_molformer.sampling import repeat_state, sample_continuations
from molfm.systems.gp_molformer.syntax import SmilesSyntax
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = [
    "optimize",
    "sample_targets",
    "score_candidates",
    "optimization_report",
    "CANDIDATE_COLUMNS",
]

CANDIDATE_COLUMNS = [
    "source_index",
    "source",
    "candidate",
    "valid",
    "canonical",
    "similarity",
    "source_value",
    "candidate_value",
    "improvement",
    "truncated",
]


def sample_targets(
    model: GPMoLFormer,
    state: State,
    logits: torch.Tensor,
    n: int,
    *,
    max_length: int,
    generator: torch.Generator,
    banned: torch.Tensor,
    syntax: SmilesSyntax | None = None,
    **sampling: Any,
) -> tuple[list[list[int]], list[bool]]:
    """Sample ``n`` targets from one pair-tuning state (after prompt and ``<bos> source <eos>``;
    ``logits`` ``[1, V]``). The target restarts at position 1 (``pair_tuning.pair_positions``).

    Returns token lists without ``<eos>`` and the flags of targets that hit ``max_length``.
    """
    tokens, lengths = sample_continuations(
        model,
        repeat_state(state, n),
        logits.expand(n, -1),
        position=1,
        n_tokens=max_length,
        generator=generator,
        banned=banned,
        syntax=syntax,
        rows_syntax=syntax.init_state(n) if syntax is not None else None,
        **sampling,
    )
    lengths = lengths.tolist()
    rows = [row[:length] for row, length in zip(tokens.tolist(), lengths, strict=True)]
    return rows, [length == max_length for length in lengths]


def _property(prop: str | Callable[[Chem.Mol], float] | None) -> Callable | None:
    if prop is None or callable(prop):
        return prop
    fn = property_function(prop)
    if fn is None:
        raise ValueError(f"no RDKit property called {prop!r}; pass a callable or None")
    return fn


@torch.inference_mode()
def optimize(
    model: GPMoLFormer,
    tokenizer: SmilesTokenizer,
    prompt: SoftPrompt | torch.Tensor,
    sources: Sequence[str],
    *,
    n_candidates: int = 20,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    max_length: int | None = None,
    property: str | Callable[[Chem.Mol], float] | None = "qed",
    source_values: Sequence[float] | None = None,
    callback: Callable[[int], None] | None = None,
    syntax_mask: bool = False,
) -> pd.DataFrame:
    """Generate ``n_candidates`` improved candidates per source with a pair-tuned prompt.

    Parameters
    ----------
    model, tokenizer
        The base model the prompt was trained on and its tokenizer.
    prompt
        A :class:`SoftPrompt` or its ``[P, C]`` tensor.
    sources
        SMILES to optimize; each must be encodable by ``tokenizer``.
    n_candidates
        Samples per source (Jin et al. and GP-MoLFormer decode 20).
    temperature, top_k, top_p
        Sampling settings (``temperature=0`` is greedy: all candidates equal).
    seed
        Base seed (see the module docstring).
    max_length
        Most target tokens per candidate, ``<eos>`` included; default the model's max_length.
    property
        ``"qed"``/``"plogp"``, a callable ``Mol -> float``, or None (no oracle: values NaN).
    source_values
        Known source values (e.g. a user column); default computed with ``property``.
    callback
        Called with the number of finished sources after each source.
    syntax_mask
        Sample candidates under :class:`~molfm.systems.gp_molformer.syntax.SmilesSyntax` (no
        unclosed rings or branches); changes the distribution, report it with the results.

    Returns
    -------
    pandas.DataFrame
        One row per candidate, columns :data:`CANDIDATE_COLUMNS`; ``similarity`` is the Morgan
        r=2 2048-bit Tanimoto to the source (NaN when invalid), ``improvement`` is
        ``candidate_value - source_value``.
    """
    config = model.config
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens, model {config.vocab_size}")
    if n_candidates < 1:
        raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
    if source_values is not None and len(source_values) != len(sources):
        raise ValueError(f"{len(source_values)} source values for {len(sources)} sources")
    prop_fn = _property(property)
    max_length = config.max_length if max_length is None else max_length
    device = model.tok_emb.weight.device
    vectors = prompt() if isinstance(prompt, SoftPrompt) else prompt
    vectors = vectors.detach().to(device)
    banned = torch.tensor([config.pad_id, config.bos_id, tokenizer.unk_id], device=device)
    sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    syntax = SmilesSyntax(tokenizer, device) if syntax_mask else None
    was_training = model.training
    model.eval()
    records: list[dict[str, Any]] = []
    try:
        prompt_state = model.init_state(1, device)
        for p in range(vectors.shape[0]):
            _, prompt_state = model.embed_step(vectors[p : p + 1], p, prompt_state)
        n_prompt = vectors.shape[0]
        for index, source in enumerate(sources):
            ids = tokenizer.encode(source)
            state, logits = prompt_state, torch.empty(0)
            for t, token in enumerate(ids):
                token_t = torch.tensor([token], device=device)
                logits, state = model.step(token_t, n_prompt + t, state)
            generator = torch.Generator(device=device)
            generator.manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
            tokens, truncated = sample_targets(
                model,
                state,
                logits,
                n_candidates,
                max_length=max_length,
                generator=generator,
                banned=banned,
                syntax=syntax,
                **sampling,
            )
            candidates = [tokenizer.decode(row) for row in tokens]
            value = None if source_values is None else float(source_values[index])
            records.extend(_score(source, index, candidates, truncated, prop_fn, value))
            if callback is not None:
                callback(index + 1)
    finally:
        model.train(was_training)
    frame = pd.DataFrame.from_records(records, columns=CANDIDATE_COLUMNS)
    frame.attrs["oracle"] = prop_fn is not None
    return frame


def score_candidates(
    source: str,
    candidates: Sequence[str],
    *,
    property: str | Callable[[Chem.Mol], float] | None = "qed",
    source_value: float | None = None,
    source_index: int = 0,
    truncated: Sequence[bool] | None = None,
) -> pd.DataFrame:
    """Score candidate SMILES for one source: the rows :func:`optimize` returns.

    Parameters
    ----------
    source
        The source SMILES.
    candidates
        ``K`` candidate SMILES (invalid strings allowed: ``valid=False``, NaN scores).
    property
        As in :func:`optimize`.
    source_value
        Known source value; default computed with ``property``.
    source_index
        Value of the ``source_index`` column.
    truncated
        ``K`` truncation flags (default all false).

    Returns
    -------
    pandas.DataFrame
        ``K`` rows, columns :data:`CANDIDATE_COLUMNS`.
    """
    flags = [False] * len(candidates) if truncated is None else list(truncated)
    rows = _score(source, source_index, list(candidates), flags, _property(property), source_value)
    return pd.DataFrame.from_records(rows, columns=CANDIDATE_COLUMNS)


def _score(
    source: str,
    index: int,
    candidates: list[str],
    truncated: list[bool],
    prop_fn: Callable | None,
    source_value: float | None,
) -> list[dict[str, Any]]:
    """Rows for one source's candidates: validity, similarity, property values."""
    source_mol = mol_or_none(source)
    if source_value is None:
        source_value = prop_fn(source_mol) if prop_fn and source_mol is not None else np.nan
    canonical = [canonical_smiles(c) for c in candidates]
    mols = [mol_or_none(c) for c in canonical]
    valid_mols = [m for m in mols if m is not None]
    sims = np.full(len(candidates), np.nan)
    if source_mol is not None and valid_mols:
        source_fp, *candidate_fps = similarity_fingerprints([source_mol, *valid_mols])
        sims[[i for i, m in enumerate(mols) if m is not None]] = bulk_tanimoto(
            source_fp, candidate_fps
        )
    rows = []
    for i, (candidate, canon, mol) in enumerate(zip(candidates, canonical, mols, strict=True)):
        value = prop_fn(mol) if prop_fn is not None and mol is not None else np.nan
        rows.append(
            {
                "source_index": index,
                "source": source,
                "candidate": candidate,
                "valid": mol is not None,
                "canonical": canon,
                "similarity": float(sims[i]),
                "source_value": float(source_value),
                "candidate_value": float(value),
                "improvement": float(value - source_value),
                "truncated": truncated[i],
            }
        )
    return rows


def _stats(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "median": float(np.median(values)),
    }


def optimization_report(
    frame: pd.DataFrame, min_similarity: Sequence[float] = (0.0, 0.4, 0.6)
) -> dict[str, Any]:
    """Summarize :func:`optimize` output (see the module docstring for the protocol).

    Parameters
    ----------
    frame
        Candidates with at least ``source, valid, canonical, similarity, improvement``
        (``source_index`` groups sources when present, else ``source``).
    min_similarity
        The thresholds ``delta``.

    Returns
    -------
    dict
        ``n_sources``, ``n_candidates``, ``validity`` (valid / all candidates),
        ``uniqueness`` (distinct valid molecules per source, summed, / valid candidates),
        ``mean_similarity`` (valid candidates vs their source), ``identical_to_source``
        (fraction of valid candidates equal to their source), ``mean_source_value``,
        ``mean_candidate_value`` and, per delta under ``"delta"`` -> ``str(delta)``:
        ``success_rate``, ``n_success``, ``improvement_mean``, ``improvement_std``,
        ``improvement_median`` (all sources, failures count 0) and
        ``improvement_mean_success`` (successful sources only, None if none). Improvement
        figures are None when the property has no oracle (all improvements NaN).
    """
    key = "source_index" if "source_index" in frame.columns else "source"
    n_sources = int(frame[key].nunique())
    valid = frame[frame["valid"].astype(bool)]
    source_canon = {s: canonical_smiles(s) for s in frame["source"].unique()}
    identical = valid["canonical"] == valid["source"].map(source_canon)
    n_unique = int(valid.groupby(key)["canonical"].nunique().sum()) if len(valid) else 0
    report: dict[str, Any] = {
        "n_sources": n_sources,
        "n_candidates": len(frame),
        "validity": len(valid) / len(frame) if len(frame) else 0.0,
        "uniqueness": n_unique / len(valid) if len(valid) else 0.0,
        "mean_similarity": float(valid["similarity"].mean()) if len(valid) else None,
        "identical_to_source": float(identical.mean()) if len(valid) else None,
        "mean_source_value": _mean_or_none(frame.groupby(key)["source_value"].first()),
        "mean_candidate_value": _mean_or_none(valid["candidate_value"]),
        "delta": {},
    }
    # no oracle (a user column): said by optimize(), else valid candidates without values
    has_oracle = frame.attrs.get(
        "oracle", not (len(valid) and valid["candidate_value"].isna().all())
    )
    sources = frame[key].unique()
    for delta in min_similarity:
        sims = valid["similarity"]
        eligible = valid[(sims >= delta) & (sims < 1.0) & valid["improvement"].notna()]
        best = eligible.groupby(key)["improvement"].max().reindex(sources)
        gains = np.maximum(best.fillna(0.0).to_numpy(np.float64), 0.0)
        success = gains > 0
        entry: dict[str, Any] = {"success_rate": float(success.mean()) if n_sources else 0.0}
        entry["n_success"] = int(success.sum())
        if has_oracle and n_sources:
            stats = _stats(gains)
            entry.update({f"improvement_{k}": v for k, v in stats.items()})
            entry["improvement_mean_success"] = (
                float(gains[success].mean()) if success.any() else None
            )
        else:
            entry["success_rate"] = None if not has_oracle else entry["success_rate"]
            entry.update(
                improvement_mean=None,
                improvement_std=None,
                improvement_median=None,
                improvement_mean_success=None,
            )
        report["delta"][str(delta)] = entry
    return report


def _mean_or_none(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.mean()) if len(values) else None
