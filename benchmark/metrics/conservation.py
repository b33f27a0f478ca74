"""scIB bio-conservation metrics not in scib-metrics: cell-cycle conservation, HVG overlap and
trajectory conservation (Luecken et al. 2022, Methods), written from scib 1.x definitions."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._checks import MetricInputError, as_labels, as_matrix, is_missing
from .pcr import principal_component_regression


def gene_set_score(X_lognorm, gene_names, gene_set, *, n_bins: int = 25, ctrl_size: int = 50, seed: int = 0) -> np.ndarray:
    """Seurat/scanpy gene-set score: mean of the set minus mean of random control genes drawn
    from the same expression bins (Tirosh et al. 2016). ``X_lognorm``: cells x genes."""
    X = X_lognorm.toarray() if hasattr(X_lognorm, "toarray") else np.asarray(X_lognorm, dtype=float)
    names = pd.Index(gene_names)
    in_set = names.isin(list(gene_set))
    if not in_set.any():
        raise MetricInputError("none of `gene_set` is in `gene_names`; check the gene identifiers")
    mean = X.mean(0)
    ranks = pd.Series(mean).rank(method="min") - 1
    bins = np.floor(ranks / len(mean) * n_bins).astype(int).to_numpy()
    rng = np.random.default_rng(seed)
    control = set()
    for b in np.unique(bins[in_set]):
        pool = np.flatnonzero((bins == b) & ~in_set)
        if len(pool):
            control.update(rng.choice(pool, size=min(ctrl_size, len(pool)), replace=False).tolist())
    ctrl = sorted(control)
    return X[:, in_set].mean(1) - (X[:, ctrl].mean(1) if ctrl else 0.0)


def cell_cycle_conservation(X_pre, X_post, cc_scores, batches, *, n_components: int = 50) -> float:
    """Per batch, 1 - |PCR(post) - PCR(pre)| / PCR(pre) of the cell-cycle scores (S, G2M)
    regressed on the top PCs; mean over batches (1 = cell-cycle variance fully kept).

    ``cc_scores``: (cells, 2) S and G2M scores computed on the unintegrated data (e.g. with
    :func:`gene_set_score` and the Tirosh et al. gene lists).
    """
    X_pre, X_post = as_matrix(X_pre, "X_pre"), as_matrix(X_post, "X_post")
    S = np.asarray(cc_scores, dtype=float).reshape(X_pre.shape[0], -1)
    b = as_labels(batches, X_pre.shape[0], "batches")
    scores = []
    for batch in pd.unique(b):
        m = b == batch
        n_comp = min(n_components, m.sum() - 1, X_pre.shape[1], X_post.shape[1])
        pre = principal_component_regression(X_pre[m], S[m], n_components=n_comp)
        post = principal_component_regression(X_post[m], S[m], n_components=n_comp)
        scores.append(max(0.0, 1 - abs(post - pre) / pre))
    return float(np.mean(scores))


def _top_dispersion_genes(X: np.ndarray, n_top: int) -> set:
    mean = X.mean(0)
    var = X.var(0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        disp = np.where(mean > 0, var / mean, -np.inf)
    return set(np.argsort(-disp, kind="stable")[:n_top].tolist())


def hvg_overlap(X_pre, X_post, batches, *, n_hvg: int = 500) -> float:
    """Per batch, share of the top-dispersion genes before integration still top after it
    (corrected-expression methods only); mean over batches."""
    A = X_pre.toarray() if hasattr(X_pre, "toarray") else np.asarray(X_pre, dtype=float)
    B = X_post.toarray() if hasattr(X_post, "toarray") else np.asarray(X_post, dtype=float)
    if A.shape != B.shape:
        raise MetricInputError(f"`X_pre` {A.shape} and `X_post` {B.shape} must have the same cells and genes")
    b = as_labels(batches, A.shape[0], "batches")
    n_top = min(n_hvg, A.shape[1])
    overlaps = []
    for batch in pd.unique(b):
        m = b == batch
        pre, post = _top_dispersion_genes(A[m], n_top), _top_dispersion_genes(B[m], n_top)
        overlaps.append(len(pre & post) / len(pre))
    return float(np.mean(overlaps))


def trajectory_conservation(latent_or_neighbors, true_pseudotime, *, root: int | None = None, k: int = 15,
                            seed: int = 0) -> float:
    """(Spearman(DPT on the integrated graph, reference pseudotime) + 1) / 2 over cells with a
    reference pseudotime (scIB's trajectory conservation)."""
    from .trajectory import pseudotime_correlation

    t = np.asarray(true_pseudotime, dtype=float)
    if is_missing(t).all():
        raise MetricInputError("`true_pseudotime` is all NaN")
    rho = pseudotime_correlation(latent_or_neighbors, t, root=root, k=k, seed=seed)
    return (rho + 1) / 2
