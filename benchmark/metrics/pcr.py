"""Principal component regression (Büttner et al. 2019; scIB "PCR batch"): variance of the
embedding explained by a covariate, and how much integration reduced it."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ._checks import MetricInputError, as_matrix


def _top_pcs(X: np.ndarray, n_components: int | None, svd_solver: str) -> tuple[np.ndarray, np.ndarray]:
    """(PC scores, their variances) of the top ``n_components`` PCs of centred ``X``."""
    if svd_solver not in ("full", "arpack"):
        raise MetricInputError(f"`svd_solver` must be 'full' or 'arpack', got {svd_solver!r}")
    if svd_solver == "arpack" and n_components is not None and n_components < min(X.shape):
        # top PCs only, as scanpy's PCA (and so scib's PCR) computes them: far cheaper on wide X
        from sklearn.decomposition import PCA

        pca = PCA(n_components=n_components, svd_solver="arpack", random_state=0)
        return pca.fit_transform(X), pca.explained_variance_
    Xc = X - X.mean(0)
    U, S, _ = np.linalg.svd(Xc, full_matrices=False)
    n_comp = n_components or len(S)
    return U[:, :n_comp] * S[:n_comp], S[:n_comp] ** 2 / (X.shape[0] - 1)


def principal_component_regression(X, covariate, *, categorical: bool = False, n_components: int | None = None,
                                   svd_solver: str = "full") -> float:
    """sum_i R^2(PC_i ~ covariate) * Var(PC_i) / sum_i Var(PC_i) over the top PCs of ``X``.

    ``svd_solver="arpack"`` computes only the top ``n_components`` (scanpy/scib) when fewer than
    ``min(X.shape)``; "full" (scib-metrics) takes them from a full SVD."""
    X = as_matrix(X, "X")
    cov = np.asarray(covariate)
    if len(cov) != X.shape[0]:
        raise MetricInputError(f"`covariate` has {len(cov)} values for {X.shape[0]} cells")
    if categorical:
        code = pd.Categorical(cov).codes
        if len(np.unique(code)) < 2:
            raise MetricInputError("PCR needs at least two categories in `covariate` (e.g. two batches)")
        A = np.eye(code.max() + 1)[code]
    else:
        A = cov.astype(np.float64).reshape(len(cov), -1)
        if np.all(A == A[0]):
            raise MetricInputError("PCR is undefined for a constant `covariate`")
    pcs, var = _top_pcs(X, n_components, svd_solver)
    A = A - A.mean(0)  # centred: no intercept needed
    coef = np.linalg.lstsq(A, pcs, rcond=None)[0]
    resid = ((pcs - A @ coef) ** 2).sum(0)
    total = ((pcs - pcs.mean(0)) ** 2).sum(0)
    r2 = np.maximum(0.0, 1.0 - resid / total)
    return float(r2 @ var / var.sum())


def pcr_comparison(X_pre, X_post, covariate, *, categorical: bool = True, scale: bool = True, **kwargs) -> float:
    """PCR batch: (PCR before - PCR after) / PCR before, floored at 0 (higher = more batch variance removed)."""
    pre = principal_component_regression(X_pre, covariate, categorical=categorical, **kwargs)
    post = principal_component_regression(X_post, covariate, categorical=categorical, **kwargs)
    if not scale:
        return post - pre
    score = (pre - post) / pre
    if score < 0:
        warnings.warn("PCR comparison is negative (integration increased batch variance); reporting 0")
        score = 0.0
    return float(score)
