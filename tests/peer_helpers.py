"""Helpers shared by test_r_adapters.py and test_python_peers.py (not a test module).

* :func:`cellbench_pair`: the real CellBench CEL-seq2_3cl vs Drop-seq_3cl pair (450 cells, three
  cell lines in both), the 300 genes of highest pooled log-expression variance. Selected on the
  pooled cells, these genes carry the protocol difference: an uncorrected PCA separates the two
  batches completely (batch-aware HVGs would hide much of it), a known batch effect to undo.
* :func:`planted_de`: negative-binomial counts, two groups, two batches, planted DE genes.
* :func:`mixing` / :func:`purity`: batch entropy of mixing (paper metric) and kNN label purity.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

PAIR = ("CEL-seq2_3cl", "Drop-seq_3cl")


def cellbench_pair(shared_data_dir, n_genes: int = 300):
    import anndata as ad
    from methods.adapters._peers_common import log_normalize

    path = shared_data_dir / "cellbench_mixology.h5ad"
    if not path.exists():
        import pytest

        pytest.skip(f"{path} is absent")
    a = ad.read_h5ad(path)
    a = a[a.obs["batch"].isin(PAIR)].copy()
    for key in ("batch", "cell_type"):
        a.obs[key] = pd.Categorical(a.obs[key].astype(str))
    L = log_normalize(a.X)
    mean = np.asarray(L.mean(axis=0)).ravel()
    var = np.asarray(L.multiply(L).mean(axis=0)).ravel() - mean ** 2
    genes = np.sort(np.argsort(-var, kind="stable")[:n_genes])
    return a[:, genes].copy()


def uncorrected_pca(adata, n: int = 10):
    from methods.adapters._peers_common import log_normalize, pca

    return pca(log_normalize(adata.X), n, seed=0)


def mixing(embedding, batches, k: int = 30) -> float:
    from benchmark.metrics.mixing import batch_entropy_mixing

    return batch_entropy_mixing(np.asarray(embedding), np.asarray(batches), k=k, seed=0)


def purity(embedding, labels, k: int = 15) -> float:
    """Fraction of each cell's k nearest neighbours sharing its label (cell lines stay apart)."""
    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels)
    idx = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding, return_distance=False)[:, 1:]
    return float((labels[idx] == labels[:, None]).mean())


def planted_de(n_cells: int = 400, n_genes: int = 400, n_de: int = 40, seed: int = 0):
    """Counts where ``n_de`` genes change 3-fold (up or down) between groups A and B.

    Gamma-Poisson (NB, dispersion 1/5) around gene means drawn from a gamma, random library
    sizes, and a per-gene batch shift for half the cells. Returns (adata, truth mask).
    """
    import anndata as ad

    rng = np.random.default_rng(seed)
    group = np.where(rng.random(n_cells) < 0.5, "A", "B")
    batch = np.where(rng.random(n_cells) < 0.5, "b0", "b1")
    base = rng.gamma(0.6, 2.0, n_genes) + 0.05
    de = rng.choice(n_genes, n_de, replace=False)
    lfc = np.zeros(n_genes)
    lfc[de] = rng.choice([-1.0, 1.0], n_de) * np.log(3.0)
    lib = rng.lognormal(0.0, 0.3, n_cells)
    mu = lib[:, None] * base[None, :] * np.exp(np.where(group[:, None] == "A", lfc[None, :], 0.0))
    mu = mu * np.where(batch[:, None] == "b1", rng.lognormal(0.0, 0.3, n_genes)[None, :], 1.0)
    X = rng.poisson(rng.gamma(5.0, mu / 5.0)).astype(np.float32)
    obs = pd.DataFrame({"batch": pd.Categorical(batch), "cell_type": pd.Categorical(group)},
                       index=[f"c{i}" for i in range(n_cells)])
    adata = ad.AnnData(sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(n_genes)]))
    truth = np.zeros(n_genes, dtype=bool)
    truth[de] = True
    return adata, truth


def auroc(truth, score) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, score))
