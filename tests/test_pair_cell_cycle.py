"""Cell-cycle conservation in the pair scenario: scored on all genes before gene selection, kept
out of the methods' input, and higher for an embedding that keeps the cycling axis."""
import numpy as np
import pandas as pd
import pytest

from benchmark.metrics.cell_cycle_genes import cell_cycle_genes
from benchmark.scenarios.inputs import cell_cycle_scores_of, prepare
from benchmark.scenarios.pair import cell_cycle_rows
from benchmark.scenarios.profiles import QUICK


def _cycling_counts(n_cells=400, n_other=100, seed=0):
    """Counts where half the cells express the S genes highly (a planted cycling population)."""
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    s_genes, g2m_genes = cell_cycle_genes("human")
    genes = list(s_genes) + list(g2m_genes) + [f"other{i}" for i in range(n_other)]
    mu = np.full((n_cells, len(genes)), 2.0)
    cycling = np.arange(n_cells) % 2 == 0
    mu[np.ix_(cycling, np.arange(len(s_genes)))] = 20.0
    X = sp.csr_matrix(rng.poisson(mu).astype(np.float32))
    obs = pd.DataFrame({"batch": pd.Categorical(np.where(np.arange(n_cells) < n_cells // 2, "a", "b")),
                        "cell_type": pd.Categorical(["t"] * n_cells)}, index=[f"c{i}" for i in range(n_cells)])
    return ad.AnnData(X, obs=obs, var=pd.DataFrame(index=genes)), cycling


def test_prepare_scores_cell_cycle_on_all_genes_before_selection():
    adata, cycling = _cycling_counts()
    out = prepare(adata, QUICK.replace(n_genes=50), cell_cycle=True)
    assert out.n_vars < adata.n_vars and "cell_cycle_scores" in out.obsm
    scores = np.asarray(out.obsm["cell_cycle_scores"])
    assert scores.shape == (out.n_obs, 2)
    kept = np.isin(adata.obs_names, out.obs_names)
    assert scores[cycling[kept], 0].mean() > scores[~cycling[kept], 0].mean() + 0.5  # S score finds the cycling half
    assert "cell_cycle_scores" not in prepare(adata, QUICK.replace(n_genes=50)).obsm  # only when asked


def test_no_cell_cycle_scores_without_the_symbols(small_sim):
    assert cell_cycle_scores_of(small_sim) is None
    assert cell_cycle_rows(np.zeros((3, 2)), ["a", "b", "a"], None) == []


def test_cell_cycle_rows_reward_an_embedding_that_keeps_the_cycling_axis():
    adata, cycling = _cycling_counts()
    scores = cell_cycle_scores_of(adata)
    X = adata.X.toarray()
    X_lognorm = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    rng = np.random.default_rng(1)
    keeps = X_lognorm  # an "integration" that changes nothing keeps all of the cycle's variance
    loses = rng.normal(size=(adata.n_obs, 20))
    batches = adata.obs["batch"].astype(str).to_numpy()
    good = cell_cycle_rows(keeps, batches, (scores, X_lognorm))[0]["value"]
    bad = cell_cycle_rows(loses, batches, (scores, X_lognorm))[0]["value"]
    assert good > 0.8 and bad < 0.3, (good, bad)
