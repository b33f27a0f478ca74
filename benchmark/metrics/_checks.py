"""Input checks shared by the metrics: one clear error naming the field and the fix."""
from __future__ import annotations

import numpy as np
import pandas as pd


class MetricInputError(ValueError):
    """A metric was given inputs it cannot score (the message names the field and the fix)."""


def as_matrix(X, name: str = "latent") -> np.ndarray:
    """2-D float array without NaN/inf (cells x features)."""
    if hasattr(X, "toarray"):
        X = X.toarray()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise MetricInputError(f"`{name}` must be a 2-D array (cells x features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise MetricInputError(f"`{name}` has no cells")
    if not np.isfinite(X).all():
        raise MetricInputError(f"`{name}` contains NaN or inf; drop or impute those cells first")
    return X


def is_missing(values) -> np.ndarray:
    """Boolean mask of missing labels (NaN/None), the data contract's 'unlabelled'."""
    return pd.isna(pd.Series(np.asarray(values, dtype=object))).to_numpy()


def as_labels(values, n: int | None = None, name: str = "labels", allow_missing: bool = False) -> np.ndarray:
    """1-D object array of labels with length ``n``; NaN refused unless ``allow_missing``."""
    if isinstance(values, (pd.Series, pd.Categorical, pd.Index)):
        values = np.asarray(values, dtype=object)
    values = np.asarray(values, dtype=object).ravel()
    if n is not None and len(values) != n:
        raise MetricInputError(f"`{name}` has {len(values)} entries but there are {n} cells; pass one per cell")
    if not allow_missing and is_missing(values).any():
        raise MetricInputError(
            f"`{name}` has {int(is_missing(values).sum())} missing (NaN) values; score only labelled cells "
            "(subset with ~pd.isna(labels)) or use a metric that excludes them"
        )
    return values


def codes(values) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes 0..C-1 and the sorted categories (``np.unique`` order)."""
    cats, inv = np.unique(np.asarray(values).astype(str), return_inverse=True)
    return inv.astype(np.int64), cats


def check_k(k: int, n: int, name: str = "k") -> int:
    if int(k) != k or k < 1:
        raise MetricInputError(f"`{name}` must be a positive integer, got {k!r}")
    if k >= n:
        raise MetricInputError(f"`{name}`={k} needs at least {k + 1} cells, got {n}; lower `{name}`")
    return int(k)
