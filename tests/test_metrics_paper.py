"""The paper's metrics on tiny hand-computed cases and edge cases (benchmark.metrics)."""
import numpy as np
import pandas as pd
import pytest

from benchmark import metrics as M
from benchmark.metrics import MetricInputError


def two_blobs(n=100, sep=50.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2 * n, 3))
    X[n:, 0] += sep
    return X


# --- neighbours -------------------------------------------------------------------------------
def test_neighbors_self_first_and_subset():
    X = np.random.default_rng(0).normal(size=(60, 4))
    X[1] = X[0]  # an exact duplicate must not push a cell out of its own first column
    nn = M.compute_neighbors(X, 10)
    assert nn.method == "exact" and nn.k == 10 and nn.indices.shape == (60, 11)
    assert (nn.indices[:, 0] == np.arange(60)).all() and (nn.distances[:, 0] == 0).all()
    assert nn.indices[0, 1] == 1 and nn.indices[1, 1] == 0
    sub = nn.subset(5)
    assert sub.k == 5 and (sub.indices == nn.indices[:, :6]).all()
    assert (nn.others(3) == nn.indices[:, 1:4]).all()
    with pytest.raises(MetricInputError, match="recompute"):
        nn.subset(11)
    with pytest.raises(MetricInputError, match="at least 61 cells"):
        M.compute_neighbors(X, 60)


def test_connectivities_fuzzy_union_properties():
    X = two_blobs(80, sep=3.0)
    nn = M.compute_neighbors(X, 14)
    C = nn.connectivities
    assert abs(C - C.T).max() < 1e-7  # symmetric (fuzzy union)
    assert C.diagonal().max() == 0 and C.max() <= 1.0 + 1e-7
    # each cell's nearest neighbour has membership 1 (rho = its distance)
    first = nn.indices[:, 1]
    assert np.allclose(np.asarray(C[np.arange(160), first]).ravel(), 1.0)
    # agreement with umap's numba implementation is checked in benchmarks/scripts/compare_scib_metrics.py


# --- batch entropy of mixing ------------------------------------------------------------------
def test_entropy_perfect_mixing_is_maximal_and_separation_zero():
    X = two_blobs(100)
    alternating = np.tile(["a", "b"], 100)  # both blobs hold both batches in equal share
    by_blob = np.repeat(["a", "b"], 100)  # one batch per blob
    # on a circle with alternating batches the 4 nearest others (+-1, +-2) are exactly half/half
    angle = 2 * np.pi * np.arange(200) / 200
    circle = np.c_[np.cos(angle), np.sin(angle)]
    assert M.batch_entropy_mixing(circle, alternating, k=4) == pytest.approx(np.log(2))
    assert M.batch_entropy_mixing(X, by_blob, k=50) == 0.0
    mixed = M.batch_entropy_mixing(X, alternating, k=50)
    assert np.log(2) * 0.95 < mixed <= np.log(2)


def test_entropy_seeded_and_restricted_to_cells():
    X = two_blobs(100, sep=1.0)
    b = np.random.default_rng(1).choice(["a", "b", "c"], 200)
    e1 = M.batch_entropy_mixing(X, b, k=20, seed=3)
    assert e1 == M.batch_entropy_mixing(X, b, k=20, seed=3)
    assert 0 < e1 <= np.log(3)
    per_cell = M.batch_entropy_per_cell(X, b, k=20)
    only = np.zeros(200, bool)
    only[7] = True
    assert M.batch_entropy_mixing(X, b, k=20, cells=only) == pytest.approx(per_cell[7])


def test_entropy_curve_reuses_graph_and_drops_impossible_k():
    X = two_blobs(50, sep=1.0)
    b = np.tile(["a", "b"], 50)
    curve = M.batch_entropy_mixing_curve(X, b, ks=(5, 10, 50, 500))
    assert list(curve["k"]) == [5, 10, 50]  # 500 >= 100 cells: dropped
    nn = M.compute_neighbors(X, 50)
    assert curve["value"].iloc[1] == M.batch_entropy_mixing(nn, b, k=10)
    with pytest.raises(MetricInputError, match="smaller `ks`"):
        M.batch_entropy_mixing_curve(X, b, ks=(500,))


def test_entropy_bad_inputs():
    X = two_blobs(10)
    with pytest.raises(MetricInputError, match="batches"):
        M.batch_entropy_mixing(X, ["a"] * 5, k=3)
    with pytest.raises(MetricInputError, match="NaN"):
        M.batch_entropy_mixing(X, [np.nan] + ["a"] * 19, k=3)
    with pytest.raises(MetricInputError, match="NaN or inf"):
        M.batch_entropy_mixing(np.full((20, 2), np.nan), ["a"] * 20, k=3)


# --- kNN purity ---------------------------------------------------------------------------------
def test_purity_identity_is_one_and_noise_is_low():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    b = np.repeat(["a", "b"], 60)
    own = {"a": X[:60], "b": X[60:]}
    assert M.knn_purity(X, b, own, k=10) == pytest.approx(1.0)
    noise = {"a": rng.normal(size=(60, 5)), "b": rng.normal(size=(60, 5))}
    assert M.knn_purity(X, b, noise, k=10) < 0.3
    curve = M.knn_purity_curve(X, b, own, ks=(5, 10, 100))
    assert list(curve["k"]) == [5, 10] and np.allclose(curve["value"], 1.0)


def test_purity_k_larger_than_batch_raises():
    X = np.random.default_rng(0).normal(size=(30, 2))
    b = np.array(["a"] * 25 + ["b"] * 5)
    with pytest.raises(MetricInputError, match="batch 'b'"):
        M.knn_purity(X, b, {"a": X[:25], "b": X[25:]}, k=10)
    with pytest.raises(MetricInputError, match="no entry for batch"):
        M.knn_purity(X, b, {"a": X[:25]}, k=3)


def test_jaccard_rows_by_hand():
    a = np.array([[1, 2, 3], [1, 2, 3]])
    b = np.array([[3, 2, 1], [4, 5, 1]])
    assert M.purity.jaccard_rows(a, b).tolist() == [1.0, 1 / 5]


# --- classification -----------------------------------------------------------------------------
def test_perfect_classifier_and_weighting():
    y = np.array(["A"] * 8 + ["B"] * 2)
    assert M.accuracy(y, y) == 1.0 and M.weighted_accuracy(y, y) == 1.0
    pred = np.array(["A"] * 10)  # majority guess: 80% unweighted, 50% weighted
    assert M.accuracy(y, pred) == pytest.approx(0.8)
    assert M.weighted_accuracy(y, pred) == pytest.approx(0.5)
    pc = M.per_class_accuracy(y, pred).set_index("cell_type")
    assert pc.loc["A", "accuracy"] == 1.0 and pc.loc["B", "accuracy"] == 0.0 and pc.loc["B", "n_cells"] == 2
    cm = M.confusion(y, pred)
    assert cm.loc["A", "A"] == 8 and cm.loc["B", "A"] == 2


def test_nan_truth_excluded_and_counted_unassigned_wrong():
    y = np.array(["A", "A", np.nan, "B", None], dtype=object)
    pred = np.array(["A", np.nan, "B", "B", "A"], dtype=object)
    assert M.accuracy(y, pred) == pytest.approx(2 / 3)  # 3 scored; the unassigned one is wrong
    assert M.label_counts(y, pred) == {"n_cells": 5, "n_scored": 3, "n_missing_truth": 2, "n_unassigned": 1}
    assert "unassigned" in M.confusion(y, pred).columns
    with pytest.raises(MetricInputError, match="all NaN"):
        M.accuracy([np.nan, np.nan], ["A", "B"])


def test_single_cell_class_and_max_posterior():
    y = ["A", "A", "A", "B"]
    assert M.weighted_accuracy(y, ["A", "A", "B", "B"]) == pytest.approx((2 / 3 + 1) / 2)
    P = pd.DataFrame([[0.9, 0.1], [0.5, 0.5]], columns=["A", "B"])
    assert M.max_posterior(P).tolist() == [0.9, 0.5]
    with pytest.raises(MetricInputError, match="sum to 1"):
        M.max_posterior([[0.9, 0.9]])


# --- protein ------------------------------------------------------------------------------------
def test_protein_consistency():
    X = two_blobs(50)
    protein = np.repeat([[0.0, 1.0], [5.0, 0.0]], 50, axis=0)  # constant within each blob
    assert M.protein_knn_error(X, protein, k=10) == 0.0
    shuffled = protein[np.random.default_rng(0).permutation(100)]
    assert M.protein_knn_error(X, shuffled, k=10) > 5
    assert M.protein_knn_overlap(X, X[:, :2] * 3, k=10) > M.protein_knn_overlap(X, shuffled + np.random.default_rng(1).normal(size=(100, 2)), k=10)
    with pytest.raises(MetricInputError, match="same cells"):
        M.protein_knn_error(X, protein[:10], k=5)


# --- trajectory ---------------------------------------------------------------------------------
def test_bin_entropy_and_pseudotime():
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 1, 400))
    X = np.c_[np.cos(3 * t), np.sin(3 * t)] * 10 + rng.normal(scale=0.05, size=(400, 2))
    # batches mixed in the first half of the trajectory, separated in the second
    b = np.where(t < 0.5, rng.choice(["a", "b"], 400), np.where(np.arange(400) % 2 == 0, "a", "b"))
    b[(t >= 0.5)] = np.where(X[t >= 0.5, 0] > np.median(X[t >= 0.5, 0]), "a", "b")
    t_nan = t.copy()
    t_nan[:5] = np.nan
    bins = M.bin_batch_entropy(X, b, t_nan, n_bins=20, k=10)
    assert len(bins) == 20 and bins["n_cells"].sum() == 395
    assert bins["value"].iloc[:8].mean() > 0.5 > bins["value"].iloc[-4:].mean()
    dpt = M.diffusion_pseudotime(X, root=0)
    assert np.nanmin(dpt) == 0.0 and dpt[0] == 0.0 and np.nanmax(dpt) == 1.0
    assert M.pseudotime_correlation(X, t) > 0.95
    assert abs(M.pseudotime_correlation(rng.normal(size=(400, 2)), t)) < 0.3
    with pytest.raises(MetricInputError, match="n_bins"):
        M.bin_batch_entropy(X, b, np.full(400, np.nan), n_bins=20, k=5)


# --- DE -----------------------------------------------------------------------------------------
def test_planted_de_gives_auroc_one():
    genes = [f"g{i}" for i in range(100)]
    padj = pd.Series(np.where(np.arange(100) < 10, 0.001, 0.5), index=genes)
    scores = pd.Series(np.where(np.arange(100) < 10, 5.0, 0.0) + np.linspace(0, 1, 100), index=genes)
    assert M.auroc(scores, padj) == 1.0
    assert M.auroc(-scores, padj) == 0.0
    # alignment by gene name: a shuffled order of the scores gives the same answer
    assert M.auroc(scores.sample(frac=1, random_state=0), padj) == 1.0
    assert M.kendall_tau(scores, scores * 2 + 1) == pytest.approx(1.0)
    with pytest.raises(MetricInputError, match="positives and negatives"):
        M.auroc(scores, pd.Series(0.5, index=genes))


# --- clustering ---------------------------------------------------------------------------------
def test_kmeans_scores_over_k():
    X = two_blobs(60)
    y = np.repeat(["a", "b"], 60).astype(object)
    y[0] = np.nan
    df = M.kmeans_clustering_scores(X, y, ks=(2, 3))
    assert df.loc[df.k == 2, "ari"].item() == pytest.approx(1.0)
    assert df.loc[df.k == 2, "silhouette"].item() > 0.8
    with pytest.raises(MetricInputError, match="2 <= k"):
        M.kmeans_clustering_scores(X, y, ks=(1,))


def test_metrics_table_lists_every_row_metric():
    for name in ("batch_entropy_mixing", "knn_purity", "accuracy", "weighted_accuracy", "auroc",
                 "kendall_tau", "silhouette_label", "ilisi_knn", "kbet_per_label", "pcr_comparison"):
        hib, fam = M.METRICS[name]
        assert isinstance(hib, bool) and fam
    assert M.higher_is_better("protein_knn_error") is False
