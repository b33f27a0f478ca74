"""Small helpers shared by the peer adapters (R via rpy2, harmonypy, scanorama, DE baselines).

Private (leading underscore): the registry does not import it as an adapter.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..base import MethodInputError


def counts_csr(adata) -> sp.csr_matrix:
    """``adata.X`` as a float CSR matrix (the data contract's raw counts)."""
    X = adata.X
    if not sp.issparse(X):
        X = sp.csr_matrix(np.asarray(X))
    return X.tocsr()


def log_normalize(X, target_sum: float = 1e4) -> sp.csr_matrix:
    """log1p(counts / library size * target_sum) as float64 CSR (``datasets.preprocessing``'s
    LogNormalize, widened so tests and R see the same numbers)."""
    from datasets.preprocessing import log_normalize as _log_normalize

    return sp.csr_matrix(_log_normalize(sp.csr_matrix(X), target_sum), dtype=np.float64)


def pca(X, n_components: int, seed: int = 0) -> np.ndarray:
    """Centred PCA scores (n_cells x n_components) of a dense or sparse matrix, seeded.

    Sparse input is centred implicitly (scikit-learn's arpack/covariance path), so no dense copy
    of the data is made.
    """
    from sklearn.decomposition import PCA

    n_components = int(max(1, min(n_components, X.shape[0] - 1, X.shape[1] - 1)))
    if sp.issparse(X):
        model = PCA(n_components=n_components, svd_solver="arpack", random_state=seed)
    else:
        model = PCA(n_components=n_components, svd_solver="full" if min(X.shape) < 500 else "randomized",
                    random_state=seed)
    return np.asarray(model.fit_transform(X), dtype=np.float64)


def batch_vector(adata, batch_key: str) -> np.ndarray:
    """The batch labels as strings; one clear error when the column is missing."""
    if batch_key not in adata.obs:
        raise MethodInputError(f"obs[{batch_key!r}] (the task's batch_key) is missing; add the batch column")
    b = adata.obs[batch_key]
    if b.isna().any():
        raise MethodInputError(f"obs[{batch_key!r}] has missing values; every cell needs a batch")
    return b.astype(str).to_numpy()


def need_batches(batches: np.ndarray, batch_key: str, method: str, n: int = 2) -> None:
    if len(np.unique(batches)) < n:
        raise MethodInputError(
            f"{method} needs at least {n} batches in obs[{batch_key!r}], found {len(np.unique(batches))}"
        )


def de_groups(adata, task) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Boolean masks (group 1, group 2) of the cells to compare, and the two group names.

    ``task.de_key`` names the obs column, ``task.de_groups = (g1, g2)``; ``g2=None`` means
    "every other cell" (one-vs-rest), as in the paper's DE section (B cells vs others).
    """
    key = task.de_key or task.label_key
    if key not in adata.obs:
        raise MethodInputError(f"obs[{key!r}] (task.de_key) is missing; set task.de_key to the group column")
    if not task.de_groups or len(task.de_groups) != 2 or task.de_groups[0] is None:
        raise MethodInputError("task.de_groups must be (group1, group2) with group2 = None for one-vs-rest")
    g1, g2 = task.de_groups
    col = adata.obs[key].astype(object)
    m1 = (col == g1).to_numpy()
    m2 = (col == g2).to_numpy() if g2 is not None else (~m1 & col.notna().to_numpy())
    for name, m in ((g1, m1), (g2 if g2 is not None else "rest", m2)):
        if m.sum() < 2:
            raise MethodInputError(
                f"DE group {name!r} of obs[{key!r}] has {int(m.sum())} cells; each group needs at least 2"
            )
    return m1, m2, str(g1), "rest" if g2 is None else str(g2)


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN kept as NaN)."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return out


def de_frame(genes, logfc, pvalue, extra: dict | None = None) -> pd.DataFrame:
    """The ``de`` output: indexed by gene, ``score = -log10(p)`` (higher = more DE).

    p-values are floored at 1e-300 so the score stays finite; ``signed_score`` carries the
    direction (sign of logFC) for evaluations that ask "up in group 1".
    """
    p = np.asarray(pvalue, dtype=float)
    p = np.where(np.isfinite(p), p, 1.0)
    lfc = np.where(np.isfinite(np.asarray(logfc, dtype=float)), logfc, 0.0)
    score = -np.log10(np.clip(p, 1e-300, 1.0)) + 0.0  # + 0.0 turns -0.0 into 0.0
    df = pd.DataFrame({"score": score, "signed_score": np.sign(lfc) * score, "logFC": lfc,
                       "pvalue": p, "padj": bh_adjust(p)}, index=pd.Index(list(map(str, genes)), name="gene"))
    for k, v in (extra or {}).items():
        df[k] = v
    return df
