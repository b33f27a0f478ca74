"""Label-transfer scores (paper, Online Methods "Weighted and unweighted accuracy",
"Maximum Posterior Probability").

Cells whose true label is missing (NaN, the data contract's "unlabelled") are excluded from
every score and counted by :func:`label_counts`; a missing *prediction* (NaN/None: the method
left the cell unassigned) counts as wrong.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._checks import MetricInputError, as_labels, is_missing


_UNASSIGNED = "\0unassigned"  # never equal to a real label


def _scored(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """(truth, prediction) as strings for the cells with a known true label."""
    t = as_labels(y_true, name="y_true", allow_missing=True)
    p = as_labels(y_pred, len(t), name="y_pred", allow_missing=True)
    keep = ~is_missing(t)
    if not keep.any():
        raise MetricInputError("`y_true` has no known label (all NaN); nothing to score")
    p_keep = p[keep]
    unassigned = is_missing(p_keep)
    p_str = p_keep.astype(str).astype(object)  # object: no fixed-width truncation of the marker
    p_str[unassigned] = _UNASSIGNED
    return t[keep].astype(str).astype(object), p_str


def label_counts(y_true, y_pred) -> dict:
    """How many cells were scored, excluded for a missing true label, or left unassigned."""
    t = as_labels(y_true, name="y_true", allow_missing=True)
    p = as_labels(y_pred, len(t), name="y_pred", allow_missing=True)
    missing_truth = is_missing(t)
    return {"n_cells": len(t), "n_scored": int((~missing_truth).sum()),
            "n_missing_truth": int(missing_truth.sum()),
            "n_unassigned": int((is_missing(p) & ~missing_truth).sum())}


def accuracy(y_true, y_pred) -> float:
    """Fraction of labelled cells whose predicted label is the true one (unweighted accuracy)."""
    t, p = _scored(y_true, y_pred)
    return float(np.mean(t == p))


def per_class_accuracy(y_true, y_pred) -> pd.DataFrame:
    """Accuracy within each true class: columns ``cell_type``, ``accuracy``, ``n_cells``."""
    t, p = _scored(y_true, y_pred)
    frame = pd.DataFrame({"cell_type": t, "correct": t == p})
    out = frame.groupby("cell_type", sort=True)["correct"].agg(["mean", "size"]).reset_index()
    return out.rename(columns={"mean": "accuracy", "size": "n_cells"})


def weighted_accuracy(y_true, y_pred) -> float:
    """Mean of the per-class accuracies: every cell type weighs the same (the paper's headline)."""
    return float(per_class_accuracy(y_true, y_pred)["accuracy"].mean())


def confusion(y_true, y_pred, *, normalize: bool = False) -> pd.DataFrame:
    """Confusion matrix (rows = true label, columns = predicted label); rows sum to 1 if normalised."""
    t, p = _scored(y_true, y_pred)
    p = np.where(p == _UNASSIGNED, "unassigned", p)
    table = pd.crosstab(pd.Series(t, name="true"), pd.Series(p, name="predicted"))
    if normalize:
        table = table.div(table.sum(axis=1), axis=0)
    return table


def max_posterior(probabilities) -> np.ndarray:
    """Each cell's largest class probability (paper's "Maximum Posterior Probability")."""
    P = np.asarray(probabilities.to_numpy() if isinstance(probabilities, pd.DataFrame) else probabilities,
                   dtype=np.float64)
    if P.ndim != 2 or P.shape[1] == 0:
        raise MetricInputError(f"`probabilities` must be a (cells x classes) array, got shape {P.shape}")
    if np.isnan(P).any() or (P < -1e-9).any() or (np.abs(P.sum(axis=1) - 1) > 1e-3).any():
        raise MetricInputError("`probabilities` rows must be non-negative and sum to 1 (no NaN)")
    return P.max(axis=1)
