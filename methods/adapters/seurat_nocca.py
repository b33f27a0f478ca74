"""Seurat's standard pipeline without CCA, a Python baseline between the uncorrected PCA and a real
integration: LogNormalize (1e4) -> seurat_v3 HVGs -> ``ScaleData(split.by = batch)`` -> PCA.

Scaling each gene within each batch removes every batch's per-gene mean and variance shift (the
first-order batch effect) but nothing that depends on the cell state, so it is the "CCA-free"
control of what Seurat's integration adds (issue #5, "Python baselines"; the paper benchmarks
"Seurat Alignment" (CCA, 10 vectors) and "Seurat PCA", Online Methods "Algorithms for benchmarking";
10 components here too).

``scale_data`` follows Seurat 4.3 ``ScaleData.default`` / ``FastRowScale`` (checked against R in
tests/test_seurat_nocca.py): per split group, centre on the group mean, divide by the group sd
(n - 1), clip values *above* ``scale.max`` = 10 only, and set genes constant within the group to 0.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..base import MethodInputError
from ..registry import register
from .pca import GENE_DEFAULTS, gene_params, lognormalized_genes, pca_scores

#: Seurat's ScaleData default ``scale.max``
SCALE_MAX = 10.0


def scale_data(X, groups=None, scale_max: float = SCALE_MAX) -> np.ndarray:
    """Seurat ``ScaleData(split.by = groups)`` of a cells x genes matrix: z-score each gene within
    each group (sd with n - 1), clip above ``scale_max``; constant genes (or one-cell groups) -> 0."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    X = X.astype(np.float64)
    g = np.zeros(X.shape[0], dtype=int) if groups is None else pd.factorize(np.asarray(groups))[0]
    if len(g) != X.shape[0]:
        raise MethodInputError(f"groups has {len(g)} entries for {X.shape[0]} cells; pass one batch per cell")
    if (g < 0).any():
        raise MethodInputError("groups contains NaN; every cell needs a batch for ScaleData(split.by=)")
    out = np.zeros_like(X)
    for k in np.unique(g):
        m = g == k
        block = X[m]
        # constant genes by range, not by sd: the sd of equal floats can come out as 1e-16
        sd = np.where(np.ptp(block, 0) > 0, block.std(0, ddof=1) if m.sum() > 1 else 0.0, 0.0)
        # Seurat divides by sd and turns the NaN of constant genes into 0
        out[m] = np.where(sd > 0, (block - block.mean(0)) / np.where(sd > 0, sd, 1.0), 0.0)
    return np.minimum(out, scale_max)


def seurat_nocca_embedding(adata, n_comps: int = 10, *, batch_key: str = "batch", genes: str = "seurat_v3",
                           n_top: int = 2000, seed: int = 0) -> tuple[np.ndarray, list]:
    """(PCA scores cells x n_comps, genes used) after per-batch ScaleData."""
    if batch_key not in adata.obs:
        raise MethodInputError(f"obs[{batch_key!r}] (task.batch_key) is missing; ScaleData is split by batch")
    X, chosen = lognormalized_genes(adata, genes, n_top, batch_key)
    X = scale_data(X, adata.obs[batch_key].astype(object).to_numpy())
    return pca_scores(X, n_comps, seed), chosen


@register(
    name="seurat_nocca",
    capabilities=("embed",),
    requires=("sklearn",),
    defaults=dict(GENE_DEFAULTS),
    citation="Stuart T, et al. Comprehensive integration of single-cell data. Cell 2019 (Seurat v3 "
             "ScaleData(split.by) without the CCA anchors)",
    url="https://satijalab.org/seurat/reference/scaledata",
    description="Seurat pipeline without CCA: log-normalise, seurat_v3 HVGs, ScaleData split by batch, PCA",
)
def seurat_nocca(adata, task):
    """PCA of genes scaled within each batch (Seurat's ScaleData split.by), no anchors."""
    genes, n_top = gene_params(task)
    Z, chosen = seurat_nocca_embedding(adata, task.n_latent, batch_key=task.batch_key, genes=genes, n_top=n_top,
                                       seed=task.seed)
    return {"embedding": Z, "extras": {"gene_selection": genes, "n_genes": len(chosen), "scale_split_by": task.batch_key}}
