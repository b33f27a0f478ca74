"""scIB bio-conservation metrics not in scib-metrics: cell-cycle conservation, HVG overlap and
trajectory conservation (Luecken et al. 2022, Methods), written from scib 1.x definitions."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._checks import MetricInputError, as_labels, as_matrix, is_missing
from .pcr import principal_component_regression


def _column_means(X) -> np.ndarray:
    return np.asarray(X.mean(0, dtype=np.float64)).ravel()


def _row_means(X) -> np.ndarray:
    return np.asarray(X.mean(1, dtype=np.float64)).ravel()


def gene_set_score(X_lognorm, gene_names, gene_set, *, n_bins: int = 25, ctrl_size: int = 50, seed: int = 0) -> np.ndarray:
    """Seurat's gene-set score (Tirosh et al. 2016) as ``scanpy.tl.score_genes`` computes it (the
    function scib's cell-cycle score calls): mean of the set minus the mean of control genes drawn,
    ``ctrl_size`` per expression bin, from the bins the set's genes fall in; set genes are then
    dropped from the controls. Bins, draws and order follow scanpy 1.11 with ``random_state=seed``.

    ``X_lognorm``: cells x genes (dense or sparse), columns named by ``gene_names``.
    """
    names = pd.Index([str(g) for g in gene_names])
    if len(names) != X_lognorm.shape[1]:
        raise MetricInputError(f"`gene_names` has {len(names)} names for {X_lognorm.shape[1]} genes; pass one per column")
    in_set = names.isin([str(g) for g in gene_set])
    if not in_set.any():
        raise MetricInputError("none of `gene_set` is in `gene_names`; check the gene identifiers")
    # scanpy: bins of about n_genes / (n_bins - 1) genes by mean expression rank
    n_items = max(1, int(np.round(len(names) / (n_bins - 1))))
    cut = (pd.Series(_column_means(X_lognorm)).rank(method="min") // n_items).to_numpy()
    rng = np.random.RandomState(seed)  # scanpy seeds numpy's legacy global generator
    control = np.zeros(len(names), dtype=bool)
    for c in np.unique(cut[in_set]):
        pool = np.flatnonzero(cut == c)
        if ctrl_size < len(pool):
            pool = pool[rng.choice(len(pool), size=ctrl_size, replace=False)]
        control[pool] = True
    control &= ~in_set
    if not control.any():
        raise MetricInputError("no control genes left for `gene_set`: pass more genes (the whole expression matrix)")
    return _row_means(X_lognorm[:, np.flatnonzero(in_set)]) - _row_means(X_lognorm[:, np.flatnonzero(control)])


def cell_cycle_scores(X_lognorm, gene_names, batches, *, organism: str = "auto", seed: int = 0) -> np.ndarray:
    """(cells, 2) S and G2/M scores of the Tirosh et al. genes, scored within each batch as scib's
    ``cell_cycle`` does (``ctrl_size`` = the smaller of the two present gene lists, as in
    ``scanpy.tl.score_genes_cell_cycle``). ``X_lognorm``: log-normalised, unintegrated, cells x genes."""
    from .cell_cycle_genes import present_cell_cycle_genes

    b = as_labels(batches, X_lognorm.shape[0], "batches")
    org, s_genes, g2m_genes = present_cell_cycle_genes(gene_names, organism)
    if not s_genes or not g2m_genes:
        raise MetricInputError(f"`gene_names` has {len(s_genes)} S and {len(g2m_genes)} G2/M genes of the {org} "
                               "Tirosh et al. lists; cell-cycle scoring needs symbols (not Ensembl ids) of both")
    X = X_lognorm.tocsr() if hasattr(X_lognorm, "tocsr") else np.asarray(X_lognorm, dtype=np.float64)
    ctrl = min(len(s_genes), len(g2m_genes))
    out = np.empty((X.shape[0], 2))
    for batch in pd.unique(b):
        rows = np.flatnonzero(b == batch)
        for j, genes in enumerate((s_genes, g2m_genes)):
            out[rows, j] = gene_set_score(X[rows], gene_names, genes, ctrl_size=ctrl, seed=seed)
    return out


def cell_cycle_conservation(X_pre, X_post, cc_scores, batches, *, n_components: int = 50) -> float:
    """Per batch, 1 - |PCR(post) - PCR(pre)| / PCR(pre) of the cell-cycle scores (S, G2M)
    regressed on the top PCs, floored at 0; mean over batches (1 = cell-cycle variance fully kept).
    Follows scib 1.x ``metrics.cell_cycle`` (Luecken et al. 2022, Methods): each side takes its own
    ``min(n_components, cells, features)`` PCs, top PCs by ARPACK as scanpy's PCA does.

    ``X_pre``: the unintegrated log-normalised expression (cells x genes, dense or sparse);
    ``X_post``: the embedding or corrected expression; ``cc_scores``: (cells, 2) S and G2M scores
    from :func:`cell_cycle_scores` on ``X_pre``.
    """
    n = X_pre.shape[0]
    if X_post.shape[0] != n:
        raise MetricInputError(f"`X_post` has {X_post.shape[0]} cells, `X_pre` {n}; pass the same cells in the same order")
    S = np.asarray(cc_scores, dtype=float).reshape(n, -1)
    b = as_labels(batches, n, "batches")
    sides = [(M.tocsr() if hasattr(M, "tocsr") else np.asarray(M), name)  # row-sliceable, sparse kept
             for M, name in ((X_pre, "X_pre"), (X_post, "X_post"))]
    scores = []
    for batch in pd.unique(b):
        rows = np.flatnonzero(b == batch)
        pre, post = (principal_component_regression(as_matrix(M[rows], name), S[rows], svd_solver="arpack",
                                                    n_components=min(n_components, len(rows), M.shape[1]))
                     for M, name in sides)
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
