"""Python baselines: kNN / k-means label transfer estimators, the PCA adapter and the controls."""
import numpy as np
import pandas as pd
import pytest

from benchmark import metrics as M
from methods.base import MethodInputError, TaskSpec
from methods.native.baselines import KMeansLabelTransfer, KNNLabelTransfer, kmeans_transfer, knn_transfer


def blobs(n_per=30, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [20, 0], [0, 20]])
    X = np.concatenate([rng.normal(size=(n_per, 2)) + c for c in centres])
    y = np.repeat(["a", "b", "c"], n_per).astype(object)
    return X, y


def hide(y, frac=0.8, seed=0):
    visible = y.copy()
    rng = np.random.default_rng(seed)
    visible[rng.random(len(y)) < frac] = np.nan
    return visible


def test_knn_transfer_separable_is_perfect_and_seeded():
    X, y = blobs()
    pred, proba = knn_transfer(X, hide(y), k=5)
    assert M.accuracy(y, pred) == 1.0 and M.weighted_accuracy(y, pred) == 1.0
    assert list(proba.columns) == ["a", "b", "c"] and np.allclose(proba.sum(1), 1)
    model = KNNLabelTransfer(k="cv", seed=0).fit(X, hide(y))
    assert model.k_ in (1, 3, 5, 10, 15, 20, 30, 50)
    assert model.k_ == KNNLabelTransfer(k="cv", seed=0).fit(X, hide(y)).k_
    assert KNNLabelTransfer(k="paper").fit(X, hide(y)).k_ == 10


def test_knn_caps_k_and_handles_single_labelled_cell():
    X, y = blobs(10)
    visible = np.full(len(y), np.nan, dtype=object)
    visible[[0, 10, 20]] = ["a", "b", "c"]  # one labelled cell per class
    model = KNNLabelTransfer(k=10).fit(X, visible)
    assert model.k_ == 3  # capped at the labelled cells
    cv = KNNLabelTransfer(k="cv").fit(X, visible)  # cannot cross-validate one cell per class
    assert cv.k_ == 3
    assert M.accuracy(y, KNNLabelTransfer(k=1).fit(X, visible).predict(X)) == 1.0


def test_kmeans_transfer_majority_and_unlabelled_clusters():
    X, y = blobs()
    pred, proba = kmeans_transfer(X, hide(y), seed=0)
    assert M.weighted_accuracy(y, pred) == 1.0
    # 4 clusters over 3 blobs, and blob "c" has no labelled cell: it borrows its nearest labelled cluster
    visible = hide(y)
    visible[y == "c"] = np.nan
    model = KMeansLabelTransfer(n_clusters=4, seed=0).fit(X, visible)
    assert set(model.predict(X)) <= {"a", "b"}
    assert np.allclose(model.predict_proba(X).sum(1), 1)


def test_baselines_refuse_bad_input():
    X, y = blobs(5)
    with pytest.raises(MethodInputError, match="no labelled cell"):
        knn_transfer(X, np.full(len(y), np.nan, dtype=object))
    with pytest.raises(MethodInputError, match="one per cell"):
        knn_transfer(X, y[:3])
    with pytest.raises(MethodInputError, match="NaN or inf"):
        knn_transfer(np.full_like(X, np.nan), y)
    with pytest.raises(MethodInputError, match="positive int"):
        knn_transfer(X, y, k=0)


# --- registered adapters on the simulator ---------------------------------------------------------
@pytest.fixture
def sim(small_sim):
    """The suite-wide simulated AnnData (tests/conftest.py): 600 cells, 2 batches, 4 types."""
    return small_sim


def masked(adata, hidden):
    a = adata.copy()
    y = a.obs["cell_type"].astype(object).to_numpy().copy()
    y[hidden] = np.nan
    a.obs["cell_type"] = y
    return a


def run(name, adata, **params):
    from methods import registry

    spec = registry.get(name)
    return spec.fn(adata, TaskSpec(seed=0, params={**spec.defaults, **params}))


def test_adapters_beat_controls_on_simulated_data(sim):
    truth = sim.obs["cell_type"].astype(object).to_numpy()
    hidden = np.random.default_rng(0).random(sim.n_obs) < 0.7
    a = masked(sim, hidden)
    emb = run("pca", a)["embedding"]
    assert emb.shape == (sim.n_obs, 10) and np.isfinite(emb).all()
    assert np.allclose(emb, run("pca", a)["embedding"])  # seeded
    scores = {m: M.weighted_accuracy(truth[hidden], run(m, a)["labels"][hidden])
              for m in ("knn_classifier", "kmeans_labels", "shuffled_labels", "majority_vote")}
    n_types = len(np.unique(truth))
    assert scores["majority_vote"] == pytest.approx(1 / n_types)
    assert scores["shuffled_labels"] < 0.45
    assert scores["knn_classifier"] > 0.8 and scores["knn_classifier"] > scores["shuffled_labels"] + 0.3
    assert scores["kmeans_labels"] > scores["majority_vote"]


def test_knn_adapter_uses_a_given_embedding(sim):
    a = masked(sim, np.arange(sim.n_obs) % 2 == 0)
    a.obsm["X_perfect"] = pd.get_dummies(sim.obs["cell_type"]).to_numpy(float)
    out = run("knn_classifier", a, embedding_key="X_perfect")
    assert out["extras"]["space"] == "X_perfect"
    assert M.accuracy(sim.obs["cell_type"].to_numpy(), out["labels"]) == 1.0
    assert out["probabilities"].index.equals(a.obs_names)
    with pytest.raises(MethodInputError, match="embedding_key"):
        run("knn_classifier", a, embedding_key="X_missing")


def test_pca_gene_choices_and_random_control(sim):
    dispersion = run("pca", sim, genes="dispersion", n_top_genes=50)
    assert dispersion["extras"]["gene_selection"] == "dispersion" and dispersion["extras"]["n_genes"] >= 50
    assert run("pca", sim, genes="all")["extras"]["n_genes"] == sim.n_vars
    with pytest.raises(MethodInputError, match="genes"):
        run("pca", sim, genes="bogus")
    rnd = run("random_embedding", sim)["embedding"]
    assert rnd.shape == (sim.n_obs, 10)
    from methods import registry

    assert registry.get("random_embedding").is_control and registry.get("majority_vote").is_control
