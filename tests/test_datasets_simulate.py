"""datasets.simulate: shapes, contract, determinism and the ground truth it claims."""
import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.stats as st
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score

from datasets import simulate, validate
from datasets.preprocessing import log_normalize
from datasets.simulate import _sample_counts


@pytest.fixture(scope="module")
def sim():
    return simulate(n_cells=1500, n_genes=300, n_batches=3, n_cell_types=5, seed=1)


def test_shapes_and_contract(sim):
    assert sim.shape == (1500, 300)
    assert isinstance(sim.X, sp.csr_matrix) and sim.X.dtype == np.float32
    validate(sim, need_batches=3, need_labels=True, need_hierarchy=True, need_pseudotime=True,
             need_protein=True)
    assert list(sim.obs["batch"].cat.categories) == ["batch_0", "batch_1", "batch_2"]
    assert sim.obs["batch"].value_counts().tolist() == [500, 500, 500]
    assert sim.obsm["protein"].shape == (1500, 10)
    assert set(sim.uns["hierarchy"]) == set(sim.obs["cell_type"].cat.categories)
    fine_to_coarse = sim.obs[["cell_type", "cell_type_coarse"]].astype(str).drop_duplicates()
    assert all(sim.uns["hierarchy"][f] == c for f, c in fine_to_coarse.itertuples(index=False))
    assert fine_to_coarse["cell_type_coarse"].nunique() == 2  # round(sqrt(5))


def test_deterministic_for_a_seed():
    a = simulate(400, 100, seed=7)
    b = simulate(400, 100, seed=7)
    c = simulate(400, 100, seed=8)
    assert (a.X != b.X).nnz == 0 and a.obs.equals(b.obs)
    assert a.obsm["protein"].equals(b.obsm["protein"])
    assert (a.X != c.X).nnz > 0


def _batch_accuracy(adata, cell_type):
    cells = (adata.obs["cell_type"] == cell_type).to_numpy()
    X = log_normalize(adata[cells]).toarray()
    y = adata.obs["batch"].to_numpy()[cells]
    return cross_val_score(LogisticRegression(max_iter=500), X, y, cv=3).mean()


def test_batch_effect_is_present_and_measurable():
    # within one cell type, so only the technical effects can tell the batches apart
    kw = dict(n_cells=1200, n_genes=200, n_batches=2, n_cell_types=3, seed=3, hidden_types=None,
              trajectory=False)
    with_effect = _batch_accuracy(simulate(**kw), "type_2")
    without = _batch_accuracy(simulate(**kw, batch_gene_sd=0.0, batch_library_sd=0.0,
                                       dropout=False), "type_2")
    assert with_effect > 0.9
    assert without < 0.65  # chance is 0.5


def test_hidden_types_absent_from_their_batches():
    auto = simulate(600, 100, n_batches=2, n_cell_types=4, seed=0)
    tab = pd.crosstab(auto.obs["batch"], auto.obs["cell_type"])
    assert tab.loc["batch_0", "type_3"] == 0 and tab.loc["batch_1", "type_3"] > 0
    custom = simulate(900, 100, n_batches=3, n_cell_types=4, seed=0,
                      hidden_types={"batch_1": ["type_0", "type_2"], 2: 1})
    tab = pd.crosstab(custom.obs["batch"], custom.obs["cell_type"])
    assert tab.loc["batch_1", ["type_0", "type_2"]].sum() == 0
    assert tab.loc["batch_2", "type_1"] == 0
    assert (tab.loc["batch_0"] > 0).all()
    assert custom.uns["simulation"]["hidden_types"]["batch_1"] == ["type_0", "type_2"]


def test_pseudotime_monotone_along_the_trajectory(sim):
    obs = sim.obs
    lrate = sim.varm["true_log_rate"]
    bp = sim.uns["simulation"]["branch_point"]
    branch_anchor = 0.5 * lrate["type_0"] + 0.25 * lrate["type_1"] + 0.25 * lrate["type_2"]
    Y = log_normalize(sim).toarray()
    segments = {"trunk": (lrate["type_0"], branch_anchor, (0.0, bp)),
                "branch_1": (branch_anchor, lrate["type_1"], (bp, 1.0)),
                "branch_2": (branch_anchor, lrate["type_2"], (bp, 1.0))}
    for lineage, (start, end, (lo, hi)) in segments.items():
        cells = (obs["lineage"] == lineage).to_numpy()
        t = obs["pseudotime"].to_numpy()[cells]
        assert t.min() >= lo and t.max() <= hi
        direction = (end - start).to_numpy()
        score = Y[cells] @ direction  # position along the segment, read off the counts
        rho = st.spearmanr(t, score).statistic
        assert rho > 0.8, (lineage, rho)
    assert obs.loc[obs["lineage"].isna(), "pseudotime"].isna().all()


def test_de_genes_recoverable_by_a_t_test(sim):
    de = sim.uns["de_genes"]
    pair = de[(de.group1 == "type_3") & (de.group2 == "type_4")]
    truth = sim.var_names.isin(pair.loc[pair.log2_fold_change.abs() >= 1, "gene"])
    assert 10 < truth.sum() < sim.n_vars / 2
    null = ~sim.var_names.isin(pair["gene"])
    Y = log_normalize(sim).toarray()
    a = Y[(sim.obs["cell_type"] == "type_3").to_numpy()]
    b = Y[(sim.obs["cell_type"] == "type_4").to_numpy()]
    t = np.nan_to_num(st.ttest_ind(a, b).statistic)
    keep = truth | null
    auroc = roc_auc_score(truth[keep], np.abs(t)[keep])
    assert auroc > 0.9
    # signs and sizes agree with the stored effect sizes
    lfc = pair.set_index("gene")["log2_fold_change"]
    genes = lfc.index[lfc.abs() >= 1]
    obs_lfc = np.log2(a[:, sim.var_names.get_indexer(genes)].mean(0) + 0.1) - \
        np.log2(b[:, sim.var_names.get_indexer(genes)].mean(0) + 0.1)
    assert np.mean(np.sign(obs_lfc) == np.sign(lfc[genes].to_numpy())) > 0.9


def test_de_table_format_and_rest_rows(sim):
    de = sim.uns["de_genes"]
    assert list(de.columns) == ["group1", "group2", "gene", "log2_fold_change"]
    assert set(de.group2) == {"type_1", "type_2", "type_3", "type_4", "rest"}
    lr = sim.varm["true_log_rate"]
    row = de[(de.group1 == "type_0") & (de.group2 == "type_2")].iloc[0]
    expected = (lr.loc[row.gene, "type_0"] - lr.loc[row.gene, "type_2"]) / np.log(2)
    assert row.log2_fold_change == pytest.approx(expected)


def test_markers_are_highest_in_their_type(sim):
    Y = pd.DataFrame(log_normalize(sim).toarray(), columns=sim.var_names)
    means = Y.groupby(sim.obs["cell_type"].to_numpy()).mean()
    for t in ("type_3", "type_4"):  # cluster types (trajectory types share profiles)
        genes = list(sim.uns["markers"][t])
        assert len(genes) == 10
        assert (means[genes].idxmax() == t).mean() >= 0.9


def test_protein_driven_by_cell_type(sim):
    means = sim.obsm["protein"].groupby(sim.obs["cell_type"].to_numpy()).mean()
    for j in range(5):
        assert means[f"protein_{j}"].idxmax() == f"type_{j}"


def test_ground_truth_survives_h5ad(tmp_path, sim):
    path = tmp_path / "sim.h5ad"
    sim.write_h5ad(path)
    back = ad.read_h5ad(path)
    pd.testing.assert_frame_equal(back.uns["de_genes"], sim.uns["de_genes"], check_dtype=False)
    assert list(back.uns["markers"]["type_1"]) == list(sim.uns["markers"]["type_1"])
    validate(back, need_hierarchy=True, need_protein=True, need_pseudotime=True)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_cell_types=2), "trajectory=True needs n_cell_types >= 3"),
    (dict(hidden_types={"batch_0": ["type_0", "type_1", "type_2", "type_3", "type_4"]}),
     "hides every cell type"),
    (dict(hidden_types={"batch_9": ["type_0"]}), "unknown batch 'batch_9'"),
    (dict(n_markers=100), "n_markers \\* n_cell_types"),
    (dict(n_cells=0), "n_cells must be a positive integer"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate(**{"n_cells": 100, "n_genes": 100, **kwargs})


def test_count_sampler_matches_negative_binomial():
    """Both sampling paths (inversion below 20, gamma-Poisson above) against scipy's NB."""
    mu = np.array([0.05, 0.7, 4.0, 35.0])
    theta = np.array([5.0, 2.0, 1.0, 8.0])
    n = 20_000
    X = _sample_counts(np.random.SeedSequence(0), np.log(mu)[None, :], np.zeros(n, int),
                       np.zeros(n, int), np.zeros(n), np.zeros(n), np.zeros(n, int),
                       np.zeros((1, 4)), theta, None).toarray()
    for g in range(4):
        p = theta[g] / (theta[g] + mu[g])
        mean, var = st.nbinom.stats(theta[g], p)
        assert abs(X[:, g].mean() - mean) < 4 * np.sqrt(var / n)
        p0 = st.nbinom.pmf(0, theta[g], p)
        assert abs((X[:, g] == 0).mean() - p0) < 4 * np.sqrt(p0 * (1 - p0) / n) + 1e-4
