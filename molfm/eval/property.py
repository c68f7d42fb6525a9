"""Property-prediction metrics and plots (regression and binary classification).

All functions take numpy arrays ``[n, T]`` (one column per target) in which NaN marks a missing
label; each target is scored on its labelled rows only. Metrics come from scikit-learn (MAE,
RMSE, R2, ROC-AUC, PR-AUC as average precision), the reference implementations the field uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "REGRESSION_METRICS",
    "CLASSIFICATION_METRICS",
    "regression_metrics",
    "classification_metrics",
    "parity_plot",
    "roc_plot",
]

REGRESSION_METRICS = ("mae", "rmse", "r2")
CLASSIFICATION_METRICS = ("roc_auc", "pr_auc", "accuracy")


def _columns(y_true: np.ndarray, y_pred: np.ndarray, targets: Sequence[str]):
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    if y_true.shape != y_pred.shape or y_true.shape[1] != len(targets):
        raise ValueError(
            f"labels {y_true.shape}, predictions {y_pred.shape} and {len(targets)} targets disagree"
        )
    for t, name in enumerate(targets):
        keep = ~np.isnan(y_true[:, t])
        yield name, y_true[keep, t], y_pred[keep, t]


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, targets: Sequence[str]
) -> dict[str, dict[str, float]]:
    """``{target: {"mae", "rmse", "r2", "n"}}`` plus ``"mean"`` over targets (MAE, RMSE, R2)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    out: dict[str, dict[str, float]] = {}
    for name, truth, pred in _columns(y_true, y_pred, targets):
        if len(truth) == 0:
            out[name] = {"mae": float("nan"), "rmse": float("nan"), "r2": float("nan"), "n": 0}
            continue
        out[name] = {
            "mae": float(mean_absolute_error(truth, pred)),
            "rmse": float(np.sqrt(mean_squared_error(truth, pred))),
            "r2": float(r2_score(truth, pred)) if len(truth) > 1 else float("nan"),
            "n": int(len(truth)),
        }
    if len(targets) > 1:
        out["mean"] = {
            k: float(np.nanmean([out[t][k] for t in targets])) for k in REGRESSION_METRICS
        }
    return out


def classification_metrics(
    y_true: np.ndarray, y_score: np.ndarray, targets: Sequence[str]
) -> dict[str, dict[str, float]]:
    """``{target: {"roc_auc", "pr_auc", "accuracy", "n"}}`` from probabilities, plus ``"mean"``.

    ROC-AUC and PR-AUC are NaN for a target whose labelled rows hold one class only.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    out: dict[str, dict[str, float]] = {}
    for name, truth, score in _columns(y_true, y_score, targets):
        two_classes = len(np.unique(truth)) == 2
        out[name] = {
            "roc_auc": float(roc_auc_score(truth, score)) if two_classes else float("nan"),
            "pr_auc": float(average_precision_score(truth, score)) if two_classes else float("nan"),
            "accuracy": float(np.mean((score >= 0.5) == (truth >= 0.5)))
            if len(truth)
            else float("nan"),
            "n": int(len(truth)),
        }
    if len(targets) > 1:
        out["mean"] = {
            k: float(np.nanmean([out[t][k] for t in targets])) for k in CLASSIFICATION_METRICS
        }
    return out


def _figure(n_panels: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n_panels, figsize=(4 * n_panels, 4), squeeze=False)
    return plt, fig, axes[0]


def parity_plot(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    targets: Sequence[str],
    path: str | Path,
    units: dict[str, str] | None = None,
) -> Path:
    """One predicted-vs-true panel per target, with MAE in the title; written as PNG."""
    plt, fig, axes = _figure(len(targets))
    for ax, (name, truth, pred) in zip(axes, _columns(y_true, y_pred, targets), strict=True):
        ax.scatter(truth, pred, s=4, alpha=0.4)
        if len(truth):
            low, high = float(min(truth.min(), pred.min())), float(max(truth.max(), pred.max()))
            ax.plot([low, high], [low, high], color="black", lw=0.8)
        unit = f" [{units[name]}]" if units and units.get(name) else ""
        mae = float(np.mean(np.abs(truth - pred))) if len(truth) else float("nan")
        ax.set(
            title=f"{name}: MAE {mae:.4g}{unit}", xlabel=f"true{unit}", ylabel=f"predicted{unit}"
        )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def roc_plot(
    y_true: np.ndarray, y_score: np.ndarray, targets: Sequence[str], path: str | Path
) -> Path:
    """One ROC curve per target, with ROC-AUC in the legend; written as PNG."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt, fig, axes = _figure(1)
    ax = axes[0]
    for name, truth, score in _columns(y_true, y_score, targets):
        if len(np.unique(truth)) < 2:
            continue
        fpr, tpr, _ = roc_curve(truth, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(truth, score):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
