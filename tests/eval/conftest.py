"""Shared setup of the evaluation tests: one compute thread, and the MOSES fixture slices."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

DATA = Path(__file__).resolve().parents[1] / "data"


def _blas_limit() -> contextlib.AbstractContextManager[object]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn (ogb)
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # ChemNet's LSTMs, the Tanimoto products and the 512x512 eigensolves are small; on shared
    # CPUs extra intra-op threads only spin (10x slower when oversubscribed). Restored after.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with _blas_limit():
        yield
    torch.set_num_threads(before)


def _read(name: str) -> list[str]:
    return pd.read_csv(DATA / name)["SMILES"].tolist()


@pytest.fixture(scope="session")
def read() -> Callable[[str], list[str]]:
    """``read(name)``: the ``SMILES`` column of ``tests/data/<name>`` (a new list each call)."""
    return _read
