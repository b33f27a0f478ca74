"""datasets.preprocessing against values computed by hand."""
import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from datasets import DataContractError
from datasets import preprocessing as pp

X_SMALL = np.array([[1.0, 3.0, 0.0], [0.0, 2.0, 2.0]])


def adata(X, genes=None, batch=None):
    a = ad.AnnData(sp.csr_matrix(np.asarray(X, dtype=np.float32)))
    a.var_names = genes or [f"g{j}" for j in range(a.n_vars)]
    a.obs_names = [f"c{i}" for i in range(a.n_obs)]
    if batch is not None:
        a.obs["batch"] = pd.Categorical(batch)
    return a


def test_library_size_and_normalisation():
    np.testing.assert_array_equal(pp.library_size(X_SMALL), [4.0, 4.0])
    np.testing.assert_array_equal(pp.library_size(sp.csr_matrix([[1, 2], [0, 0]])), [3.0, 0.0])
    norm = pp.normalize_total(sp.csr_matrix(X_SMALL), target_sum=10)
    np.testing.assert_allclose(norm.toarray(), [[2.5, 7.5, 0.0], [0.0, 5.0, 5.0]])
    np.testing.assert_allclose(pp.log_normalize(X_SMALL, 10),
                               np.log1p([[2.5, 7.5, 0.0], [0.0, 5.0, 5.0]]), rtol=1e-6)
    # an empty cell stays zero instead of dividing by zero
    np.testing.assert_array_equal(pp.normalize_total(np.array([[0.0, 0.0]])), [[0.0, 0.0]])


def test_log_library_prior():
    a = adata([[1, 0], [3, 0], [2, 2]], batch=["x", "x", "y"])
    prior = pp.log_library_prior(a)
    assert prior.loc["x", "mean"] == pytest.approx((np.log(1) + np.log(3)) / 2)
    assert prior.loc["x", "var"] == pytest.approx((np.log(3) / 2) ** 2)
    assert prior.loc["y", "mean"] == pytest.approx(np.log(4)) and prior.loc["y", "var"] == 0
    with pytest.raises(DataContractError, match="zero counts"):
        pp.log_library_prior(np.array([[0.0, 0.0], [1.0, 0.0]]))


def test_dispersion_table_by_hand():
    X = np.array([[4, 0, 1], [0, 4, 1], [2, 2, 1], [1, 1, 2]], dtype=float)
    t = pp.dispersion_table(X, n_bins=1, target_sum=4)
    # every cell has 4 or 5 counts: normalised = X * 4 / library
    norm = X * (4 / X.sum(1, keepdims=True))
    m, v = norm.mean(0), norm.var(0, ddof=1)
    disp = np.log(v / m)
    np.testing.assert_allclose(t["mean"], np.log1p(m))
    np.testing.assert_allclose(t["dispersion"], disp)
    # one bin: plain z-score across genes (sample SD)
    np.testing.assert_allclose(t["dispersion_norm"], (disp - disp.mean()) / disp.std(ddof=1))


def test_paper_gene_selection_is_a_union_over_datasets_on_shared_genes():
    rng = np.random.default_rng(0)
    base = rng.poisson(5, (60, 5)).astype(float)
    d1, d2 = base.copy(), base[::-1].copy()
    d1[:30, 1] += 40  # g1 overdispersed in dataset 1 only
    d2[:30, 3] += 40  # g3 overdispersed in dataset 2 only
    a1 = adata(d1, ["g0", "g1", "g2", "g3", "only1"])
    a2 = adata(d2, ["g0", "g1", "g2", "g3", "only2"])
    chosen = pp.select_genes_by_dispersion([a1, a2], n_top=1, normalized=False)
    assert chosen == ["g1", "g3"]
    # one AnnData split by batch gives the same answer
    both = ad.concat({"b1": a1[:, :4], "b2": a2[:, :4]}, label="batch", index_unique="-")
    assert pp.select_genes_by_dispersion(both, n_top=1, normalized=False) == ["g1", "g3"]
    assert pp.intersect_genes([a1, a2]) == ["g0", "g1", "g2", "g3"]


def test_intersect_genes_without_overlap():
    with pytest.raises(DataContractError, match="share no gene name"):
        pp.intersect_genes([adata([[1]], ["a"]), adata([[1]], ["b"])])


def test_clipped_standardized_variance_matches_direct_formula():
    rng = np.random.default_rng(1)
    X = rng.negative_binomial(2, 0.3, (50, 6)).astype(float)
    X[0, 2] = 500  # an outlier that must be clipped
    mean, var = X.mean(0), X.var(0, ddof=1)
    sd = np.sqrt(var) * 0.7
    clip = np.sqrt(50)
    # Seurat: clip the standardised value at sqrt(n), centre on the gene mean (not on mean(z))
    z = np.minimum((X - mean) / sd, clip)
    expected = (z**2).sum(0) / 49
    got_dense = pp._clipped_standardized_variance(X, mean, sd, clip)
    got_sparse = pp._clipped_standardized_variance(sp.csr_matrix(X), mean, sd, clip)
    np.testing.assert_allclose(got_dense, expected, rtol=1e-10)
    np.testing.assert_allclose(got_sparse, expected, rtol=1e-10)


def test_seurat_v3_ranks_an_overdispersed_gene_first():
    rng = np.random.default_rng(2)
    mu = np.exp(rng.normal(0, 1, 80))
    X = rng.poisson(mu, (300, 80)).astype(float)  # Poisson: on the mean-variance trend
    X[:, 7] = rng.negative_binomial(0.5, 0.5 / (0.5 + mu[7]), 300)  # far above the trend
    a = adata(X, batch=["a"] * 150 + ["b"] * 150)
    table = pp.hvg_seurat_v3_table(a, n_top=5)
    assert table["variances_norm"].idxmax() == "g7"
    assert "g7" in pp.select_hvg_seurat_v3(a, n_top=5)
    assert "g7" in pp.select_hvg_seurat_v3(a, n_top=5, batch_key="batch")
    assert len(pp.select_hvg_seurat_v3(a, n_top=5, batch_key="batch")) == 5


def test_concat_datasets():
    a1 = adata([[1, 2, 3]], ["x", "y", "z"])
    a2 = adata([[4, 5], [6, 7]], ["z", "x"], batch=["p", "q"])
    both = pp.concat_datasets({"one": a1, "two": a2})
    assert list(both.var_names) == ["x", "z"]
    assert list(both.obs["batch"]) == ["one", "two:p", "two:q"]
    assert list(both.obs["dataset"]) == ["one", "two", "two"]
    np.testing.assert_array_equal(both.X.toarray(), [[1, 3], [5, 4], [7, 6]])
    assert both.obs_names.is_unique


def test_smartseq2_length_normalisation_by_hand():
    a = adata([[10, 10], [5, 3]], ["short", "long"])
    # relative lengths 1000/2000 = 0.5 and 3000/2000 = 1.5; integer part kept
    out = pp.smartseq2_length_normalize(a, pd.Series({"long": 3000.0, "short": 1000.0}))
    np.testing.assert_array_equal(out.toarray(), [[20, 6], [10, 2]])
    with pytest.raises(DataContractError, match="no length for 1 genes"):
        pp.smartseq2_length_normalize(a, pd.Series({"short": 1000.0}))
    with pytest.raises(DataContractError, match="positive"):
        pp.smartseq2_length_normalize(a.X, [1000.0, 0.0])


def test_protein_clr_by_hand():
    P = pd.DataFrame({"CD4": [1.0, 0.0], "CD8": [3.0, 0.0]}, index=["c0", "c1"])
    clr = pp.normalize_protein_clr(P)
    geo = np.sqrt(8.0)  # exp(mean(log 2, log 4))
    np.testing.assert_allclose(clr.loc["c0"], [np.log1p(1 / geo), np.log1p(3 / geo)])
    np.testing.assert_allclose(clr.loc["c1"], [0.0, 0.0])
    per_protein = pp.normalize_protein_clr(P, axis="protein")
    np.testing.assert_allclose(per_protein["CD4"], [np.log1p(1 / np.sqrt(2)), 0.0])
    with pytest.raises(DataContractError, match="non-negative"):
        pp.normalize_protein_clr(-P)


def test_protein_gmm_as_the_paper():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(10, 1, 300), rng.normal(100, 5, 200)])
    out = pp.normalize_protein_gmm(pd.DataFrame({"CD3": x}), seed=0)["CD3"].to_numpy()
    assert (out[:300] == 0).all() and (out[300:] > 0).all()
    pos = x[300:] - out[300:]  # the subtracted midpoint (mu1 + mu2) / 2
    assert np.allclose(pos, pos[0]) and pos[0] == pytest.approx(55, abs=1.5)
