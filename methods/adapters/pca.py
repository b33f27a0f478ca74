"""PCA on log-normalised, scaled highly variable genes, no batch correction (the paper's
"Seurat PCA": "a simple PCA based after normalization by Seurat"; 10 components by default).

Gene selection (``params["genes"]``): "seurat_v3" (variance-stabilised HVGs, the better choice
here per FINDINGS.md), "dispersion" (the paper's per-dataset dispersion union) or "all". The
embedding is the unintegrated control of the scIB aggregate and the default space of the kNN and
k-means label-transfer baselines.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..base import MethodInputError
from ..registry import register

GENE_CHOICES = ("seurat_v3", "dispersion", "all")
#: gene-selection params of the PCA-based adapters (pca, seurat_nocca) and their defaults
GENE_DEFAULTS = {"genes": "seurat_v3", "n_top_genes": 2000}


def gene_params(task) -> tuple[str, int]:
    """(params['genes'], params['n_top_genes']) of ``task``, defaulting to :data:`GENE_DEFAULTS`."""
    return (task.params.get("genes", GENE_DEFAULTS["genes"]),
            int(task.params.get("n_top_genes", GENE_DEFAULTS["n_top_genes"])))


def select_genes(adata, how: str, n_top: int, batch_key: str | None) -> list:
    """Gene names for the PCA (``how`` in :data:`GENE_CHOICES`)."""
    from datasets import preprocessing as pp

    if how not in GENE_CHOICES:
        raise MethodInputError(f"params['genes'] must be one of {GENE_CHOICES}, got {how!r}")
    if how == "all" or n_top >= adata.n_vars:
        # nothing to select (e.g. the scenario already chose the genes); the seurat_v3 loess
        # can also fail ("near singularities") on such already-filtered inputs
        return list(adata.var_names)
    key = batch_key if batch_key in adata.obs and adata.obs[batch_key].nunique() > 1 else None
    if how == "seurat_v3":
        return pp.select_hvg_seurat_v3(adata, n_top=n_top, batch_key=key)
    return pp.select_genes_by_dispersion(adata, n_top=n_top, batch_key=key)


def lognormalized_genes(adata, genes: str, n_top: int, batch_key: str | None) -> tuple[np.ndarray, list]:
    """(LogNormalized expression of the selected genes, dense float64 cells x genes, their names)."""
    from datasets.preprocessing import log_normalize

    chosen = select_genes(adata, genes, n_top, batch_key)
    if len(chosen) < 2:
        raise MethodInputError(f"gene selection '{genes}' kept {len(chosen)} genes; PCA needs at least 2")
    X = log_normalize(adata[:, chosen].X)
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    return X.astype(np.float64), list(chosen)


def pca_scores(X: np.ndarray, n_comps: int, seed: int) -> np.ndarray:
    """Top ``n_comps`` PC scores (fewer if the matrix is smaller), exact SVD for small inputs."""
    from sklearn.decomposition import PCA

    n = int(min(n_comps, X.shape[0] - 1, X.shape[1]))
    solver = "full" if min(X.shape) <= 500 else "randomized"
    return PCA(n_components=n, svd_solver=solver, random_state=seed).fit_transform(X)


def pca_embedding(adata, n_comps: int = 10, *, genes: str = "seurat_v3", n_top: int = 2000,
                  batch_key: str | None = "batch", seed: int = 0) -> tuple[np.ndarray, list]:
    """(PCA scores cells x n_comps, genes used): LogNormalize -> genes -> z-score (clip 10) -> PCA."""
    X, chosen = lognormalized_genes(adata, genes, n_top, batch_key)
    sd = X.std(0, ddof=1)
    # ScaleData-like z-score, but clipped at both ends where Seurat clips above 10 only
    # (seurat_nocca.scale_data follows Seurat); kept so the regress golden's PCA stays the same
    X = np.clip((X - X.mean(0)) / np.where(sd > 0, sd, 1.0), -10, 10)
    return pca_scores(X, n_comps, seed), chosen


@register(
    name="pca",
    capabilities=("embed",),
    requires=("sklearn",),
    defaults=dict(GENE_DEFAULTS),
    citation="Butler A, et al. Integrating single-cell transcriptomic data across different conditions, "
             "technologies, and species. Nat Biotechnol 2018 (Seurat PCA)",
    url="https://satijalab.org/seurat/",
    description="PCA of log-normalised scaled HVGs, no batch correction",
)
def pca(adata, task):
    """Unintegrated PCA embedding (Seurat-like preprocessing)."""
    genes, n_top = gene_params(task)
    Z, chosen = pca_embedding(adata, task.n_latent, genes=genes, n_top=n_top,
                              batch_key=task.batch_key, seed=task.seed)
    return {"embedding": Z, "extras": {"gene_selection": genes, "n_genes": len(chosen)}}
