"""Fréchet ChemNet Distance (FCD; Preuer et al. 2018) as MOSES computes it.

MOSES scores FCD with ``fcd_torch``: each SMILES is canonicalized with RDKit, one-hot encoded
over ChemNet's 35-symbol vocabulary (padded to 350 positions, divided by 35), run through
ChemNet, and the 512-d activations of the last LSTM are summarized by their mean and
covariance. The distance between two summaries is the Fréchet distance of two Gaussians.

The ChemNet weights come from the ``fcd`` package (``fcd>=1.2``); its
``ChemNet_v0.13_pretrained.pt`` holds the same layer configs and bit-identical tensors as
fcd_torch 1.0.7's file, so activations equal the ones behind MOSES's published statistics.
The one-hot encoding is written here to follow fcd_torch exactly, which differs from ``fcd``'s
in two corner cases: encoding stops at the first ``.`` (only the first fragment of a
multi-fragment SMILES is seen), and SMILES longer than 349 symbols are truncated instead of
widening the padding. For single-fragment SMILES shorter than that the two are identical.
"""

from __future__ import annotations

import functools
import importlib.resources
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from molfm.chem.parse import canonical_smiles

__all__ = [
    "CHEMNET_VOCAB",
    "CHEMNET_PAD_LEN",
    "chemnet_model",
    "chemnet_one_hot",
    "chemnet_activations",
    "fcd_statistics",
    "frechet_distance",
]

# ChemNet's input alphabet, in its column order ('X' = unknown, '.' = end of string).
CHEMNET_VOCAB: tuple[str, ...] = (
    "C", "N", "O", "H", "F", "Cl", "P", "B", "Br", "S", "I", "Si", "#", "(", ")", "+", "-",
    "1", "2", "3", "4", "5", "6", "7", "8", "=", "[", "]", "@", "c", "n", "o", "s", "X", ".",
)  # fmt: skip
CHEMNET_PAD_LEN = 350
_INDEX = {symbol: i for i, symbol in enumerate(CHEMNET_VOCAB)}
_UNKNOWN = _INDEX["X"]
_END = _INDEX["."]
_SECOND_LETTERS = frozenset("ril")  # Br, Cl, Si (and any other X+r/i/l pair, as fcd_torch)


@functools.cache
def _chemnet_on_cpu() -> torch.nn.Module:
    try:
        import fcd
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("FCD needs the 'fcd' package (pip install 'fcd>=1.2')") from err
    weights = importlib.resources.files("fcd") / "ChemNet_v0.13_pretrained.pt"
    with importlib.resources.as_file(weights) as path:
        model = fcd.load_ref_model(str(path))
    model.eval()
    return model


def chemnet_model(device: str = "cpu") -> torch.nn.Module:
    """ChemNet (eval mode) from the ``fcd`` package, moved to ``device``."""
    return _chemnet_on_cpu().to(device)


def _token_ids(smiles: str, pad_len: int) -> list[int]:
    """Symbol ids of ``smiles`` plus the end symbol, as fcd_torch's ``get_one_hot`` reads them."""
    text = smiles + "."
    ids: list[int] = []
    pos = 0
    while True:
        step = 2 if pos + 1 < len(text) and text[pos + 1] in _SECOND_LETTERS else 1
        ids.append(_INDEX.get(text[pos : pos + step], _UNKNOWN))
        pos += step
        if pos >= len(text) or text[pos] == "." or len(ids) == pad_len - 1:
            ids.append(_END)
            return ids


def chemnet_one_hot(smiles: str, pad_len: int = CHEMNET_PAD_LEN) -> np.ndarray:
    """One-hot matrix ``(pad_len, 35)`` of a SMILES string, unscaled (see module docstring)."""
    out = np.zeros((pad_len, len(CHEMNET_VOCAB)), dtype=np.float32)
    ids = _token_ids(smiles, pad_len)
    out[np.arange(len(ids)), ids] = 1.0
    return out


def _canonical(smiles: str) -> str:
    canonical = canonical_smiles(smiles)
    if canonical is None:
        raise ValueError(f"invalid SMILES for FCD: {smiles!r}")
    return canonical


def chemnet_activations(
    smiles: Sequence[str],
    *,
    canonize: bool = True,
    batch_size: int = 512,
    device: str = "cpu",
) -> np.ndarray:
    """ChemNet penultimate activations, ``(len(smiles), 512)`` ``float32``.

    Parameters
    ----------
    smiles
        Input SMILES; with ``canonize`` each must parse (``ValueError`` otherwise).
    canonize
        Canonicalize with RDKit first, as fcd_torch (and hence MOSES) does.
    batch_size
        Molecules per forward pass.
    device
        Torch device to run ChemNet on.
    """
    if len(smiles) == 0:
        return np.zeros((0, 512), dtype=np.float32)
    model = chemnet_model(device)
    scale = float(len(CHEMNET_VOCAB))
    chunks = []
    with torch.no_grad():
        for start in range(0, len(smiles), batch_size):
            batch = smiles[start : start + batch_size]
            if canonize:
                batch = [_canonical(s) for s in batch]
            x = np.stack([chemnet_one_hot(s) for s in batch]) / scale
            inputs = torch.from_numpy(x).transpose(1, 2).to(device)
            chunks.append(model(inputs).cpu().numpy().astype(np.float32))
    return np.concatenate(chunks, axis=0)


def fcd_statistics(
    smiles: Sequence[str],
    *,
    canonize: bool = True,
    batch_size: int = 512,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean ``(512,)`` and covariance ``(512, 512)`` of the ChemNet activations.

    Returns ``None`` with a warning for fewer than two molecules (no covariance), as MOSES.
    """
    if len(smiles) < 2:
        warnings.warn(
            f"Can't compute FCD statistics for fewer than 2 molecules ({len(smiles)} given)",
            stacklevel=2,
        )
        return None
    acts = chemnet_activations(smiles, canonize=canonize, batch_size=batch_size, device=device)
    return acts.mean(0), np.cov(acts.T)


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr((sigma1 sigma2)^(1/2))`` for symmetric positive semi-definite matrices.

    The eigenvalues of ``sigma1 sigma2`` equal those of the symmetric PSD matrix
    ``sigma1^(1/2) sigma2 sigma1^(1/2)``, so the trace of the root is the sum of the square
    roots of the latter's eigenvalues (round-off negatives clipped to 0).
    """
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    inner = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between Gaussians ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``.

    fcd and fcd_torch take the matrix root with ``scipy.linalg.sqrtm`` (a complex Schur
    decomposition, seconds for 512x512, with an ``eps`` diagonal fallback). For covariance
    matrices only the trace of the root is needed, and it is computed here from two symmetric
    eigendecompositions: the same quantity, more stable for rank-deficient covariances and
    about 20x faster. The two agree to ~1e-6 relative (checked in the tests).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    sigma2 = np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("the two Gaussians have different dimensions")
    diff = mu1 - mu2
    tr_covmean = _trace_sqrt_product(sigma1, sigma2)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
