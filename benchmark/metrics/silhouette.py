"""Average silhouette width scores of scIB (Luecken et al. 2022, Nat. Methods 19:41), as
scib-metrics 0.6 defines them: ``silhouette_label`` (bio), ``silhouette_batch`` and its BRAS
variant ``bras`` (Rautenstrauch & Ohler 2025; batch)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._checks import MetricInputError, as_labels, as_matrix, codes

_CHUNK = 1024


def _distances(A: np.ndarray, B: np.ndarray, B_sq: np.ndarray, metric: str) -> np.ndarray:
    if metric == "euclidean":  # in place: one (chunk x n) buffer instead of four
        D = A @ B.T
        D *= -2.0
        D += (A * A).sum(1)[:, None]
        D += B_sq[None, :]
        np.maximum(D, 0.0, out=D)
        return np.sqrt(D, out=D)
    if metric == "cosine":  # B_sq holds the row norms here
        na = np.linalg.norm(A, axis=1)
        return np.clip(1.0 - (A @ B.T) / (na[:, None] * B_sq[None, :]), 0.0, 2.0)
    raise MetricInputError(f"`metric` must be 'euclidean' or 'cosine', got {metric!r}")


def silhouette_samples(X, labels, *, metric: str = "euclidean", between: str = "nearest") -> np.ndarray:
    """Per-cell silhouette (b - a) / max(a, b), computed in blocks with BLAS.

    ``between``: how b is formed from the mean distances to the other groups: "nearest"
    (standard silhouette), "mean_other" (mean distance to all cells of other groups) or
    "furthest" (BRAS options). Singleton groups give 0, as in scikit-learn.
    """
    X = as_matrix(X, "X").astype(np.float32)  # float32 halves memory traffic, as scib-metrics
    code, cats = codes(as_labels(labels, X.shape[0]))
    n, C = X.shape[0], len(cats)
    if C < 2:
        raise MetricInputError("silhouette needs at least 2 groups in `labels`")
    freq = np.bincount(code, minlength=C).astype(np.float64)
    onehot = np.zeros((n, C), dtype=np.float32)
    onehot[np.arange(n), code] = 1.0
    B_sq = (X * X).sum(1) if metric == "euclidean" else np.linalg.norm(X, axis=1)
    intra = np.empty(n)
    inter = np.empty(n)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        D = _distances(X[start:stop], X, B_sq, metric)
        sums = (D @ onehot).astype(np.float64)  # (chunk, C) summed distance to each group
        own = code[start:stop]
        rows = np.arange(stop - start)
        intra[start:stop] = sums[rows, own]
        if between == "nearest":
            mean = sums / freq
            mean[rows, own] = np.inf
            inter[start:stop] = mean.min(1)
        elif between == "furthest":
            mean = sums / freq
            mean[rows, own] = -np.inf
            inter[start:stop] = mean.max(1)
        elif between == "mean_other":
            inter[start:stop] = (sums.sum(1) - sums[rows, own]) / (n - freq[own])
        else:
            raise MetricInputError(f"`between` must be 'nearest', 'mean_other' or 'furthest', got {between!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        intra = intra / (freq[code] - 1)
        s = (inter - intra) / np.maximum(intra, inter)
    return np.nan_to_num(s)  # singletons (0/0) and identical points score 0


def silhouette_label(X, labels, *, rescale: bool = True, metric: str = "euclidean", samples=None) -> float:
    """Label ASW: mean silhouette of cell-type labels, rescaled to [0, 1] (higher = better).

    ``samples``: per-cell label silhouettes already computed (reused from isolated labels).
    """
    s = silhouette_samples(X, labels, metric=metric) if samples is None else samples
    asw = float(np.mean(s))
    return (asw + 1) / 2 if rescale else asw


def silhouette_batch(X, labels, batches, *, rescale: bool = True, metric: str = "euclidean",
                     between: str = "nearest") -> float:
    """Batch ASW within each label: mean over labels of mean(1 - |silhouette of batches|).

    Labels present in a single batch (or with one cell per batch) are skipped, as in scIB.
    Higher = batches better mixed within cell types.
    """
    X = as_matrix(X, "X")
    y = as_labels(labels, X.shape[0], "labels")
    b = as_labels(batches, X.shape[0], "batches")
    means = []
    for group in np.unique(y.astype(str)):
        mask = y.astype(str) == group
        n_b = len(pd.unique(b[mask]))
        if n_b == 1 or n_b == mask.sum():
            continue
        s = np.abs(silhouette_samples(X[mask], b[mask], metric=metric, between=between))
        means.append(np.mean(1 - s) if rescale else np.mean(s))
    if not means:
        raise MetricInputError("silhouette_batch is undefined: every label is in a single batch; "
                               "it needs a label shared by at least two batches")
    return float(np.mean(means))


def bras(X, labels, batches, *, metric: str = "cosine", between: str = "mean_other") -> float:
    """Batch removal adapted silhouette (BRAS): batch ASW with cosine distance and mean-other b."""
    return silhouette_batch(X, labels, batches, rescale=True, metric=metric, between=between)
