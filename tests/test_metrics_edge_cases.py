"""Edge cases of issue #5's "Done when" list not covered by test_metrics_paper/test_metrics_scib:
k larger than a batch, a class with one cell, NaN labels (excluded and counted, or refused with
the count), and a shuffled embedding next to the random control on the batch side too."""
import numpy as np
import pandas as pd
import pytest

from benchmark import metrics as M
from benchmark.metrics import MetricInputError


def blobs(n_per=30, seed=0):
    rng = np.random.default_rng(seed)
    centres = ((0, 0), (30, 0), (0, 30))
    X = np.concatenate([rng.normal(size=(n_per, 2)) + c for c in centres])
    return X, np.repeat(["t0", "t1", "t2"], n_per).astype(object)


# --- k larger than a batch ------------------------------------------------------------------------
def test_entropy_with_k_larger_than_the_small_batch():
    # 180 + 20 cells drawn from one cloud: k = 50 exceeds the small batch, and the neighbourhoods
    # hold batches in about the global 90/10 share: entropy near -0.9 ln 0.9 - 0.1 ln 0.1 = 0.325
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    b = rng.permutation(np.r_[np.full(180, "big"), np.full(20, "small")])
    expected = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))
    value = M.batch_entropy_mixing(X, b, k=50, seed=0)
    assert abs(value - expected) < 0.06 and value < np.log(2) * 0.6


def test_purity_and_kbet_with_k_larger_than_a_batch():
    X, y = blobs()
    b = np.where(np.arange(len(y)) < 85, "a", "b")  # batch b: 5 cells
    with pytest.raises(MetricInputError, match="batch 'b'"):  # its own kNN graph cannot have 10 neighbours
        M.knn_purity(X, b, {"a": X[:85], "b": X[85:]}, k=10)
    # kBET takes k0 from the batch sizes: the 5 cells of batch b, scattered at random inside type
    # t2 (the only type with two batches), are scored, and accepted as mixed
    score, df = M.kbet_per_label(M.compute_neighbors(X, 49), b, y, return_df=True)
    assert score > 0.5 and np.isfinite(df.set_index("cell_type").loc["t2", "kbet"])


# --- a class with one cell ------------------------------------------------------------------------
def test_one_cell_class_in_graph_and_clustering_metrics():
    X, y = blobs()
    y[0] = "solo"
    nn = M.compute_neighbors(X, 29)
    assert M.graph_connectivity(nn, y) == 1.0  # a single cell is its own (whole) component
    assert 0.9 < M.clisi_knn(nn, y) <= 1.0
    scores = M.nmi_ari_cluster_labels_kmeans(X, y)  # 4 labels -> k = 4: the solo cell may split a blob
    assert 0.8 < scores["nmi"] <= 1.0
    pred = np.where(y == "solo", "t0", y)  # only the one-cell class is wrong
    # every class weighs the same: its one wrong cell of 90 costs a quarter, not 1/90
    assert M.weighted_accuracy(y, y) == 1.0 and M.weighted_accuracy(y, pred) == pytest.approx(0.75)
    pc = M.per_class_accuracy(y, pred).set_index("cell_type")
    assert pc.loc["solo", "accuracy"] == 0.0 and pc.loc["solo", "n_cells"] == 1


# --- NaN labels -------------------------------------------------------------------------------------
def test_nan_labels_refused_by_the_scib_suite_with_their_count():
    X, y = blobs()
    y[[3, 40]] = np.nan
    b = np.tile(["a", "b"], 45)
    with pytest.raises(MetricInputError, match="2 missing"):
        M.scib_suite(X, b, y, X, metrics=("graph_connectivity",))


def test_nan_labels_excluded_from_kmeans_scores():
    X, y = blobs()
    wrong = y.copy()
    wrong[:10] = "t1"  # mislabelled cells lower the ARI ...
    missing = y.copy()
    missing[:10] = np.nan  # ... missing ones are left out of it
    ari = {name: M.kmeans_clustering_scores(X, lab, ks=(3,))["ari"].item() for name, lab in
           (("wrong", wrong), ("missing", missing))}
    assert ari["missing"] == pytest.approx(1.0) and ari["wrong"] < 0.9


def test_nan_batch_and_nan_truth_in_classification_counts():
    y = np.array(["A", np.nan, "B", "B"], dtype=object)
    counts = M.label_counts(y, ["A", "A", "B", np.nan])
    assert counts["n_missing_truth"] == 1 and counts["n_scored"] == 3 and counts["n_unassigned"] == 1
    with pytest.raises(MetricInputError, match="missing"):
        M.batch_entropy_mixing(np.random.default_rng(0).normal(size=(4, 2)), ["a", None, "b", "a"], k=2)


# --- shuffled embedding vs the random control, batch side -----------------------------------------
def test_shuffled_embedding_mixes_like_random_control():
    rng = np.random.default_rng(0)
    X, y = blobs(50)
    b = np.where(rng.random(len(y)) < 0.5, "a", "b")
    X_sep = X + (b == "a")[:, None] * 10.0  # batches separated inside every type
    shuffled = X_sep[rng.permutation(len(y))]
    random = rng.normal(size=X.shape)
    mix = {name: M.batch_entropy_mixing(E, b, k=15, seed=0) for name, E in
           (("separated", X_sep), ("shuffled", shuffled), ("random", random))}
    assert abs(mix["shuffled"] - mix["random"]) < 0.05
    assert mix["separated"] < mix["random"] - 0.3
    table = pd.DataFrame({name: M.scib_suite(E, b, y, X_sep, metrics=("ilisi_knn", "graph_connectivity"))
                          for name, E in (("separated", X_sep), ("shuffled", shuffled), ("random", random))}).T
    assert abs(table.loc["shuffled", "ilisi_knn"] - table.loc["random", "ilisi_knn"]) < 0.1
