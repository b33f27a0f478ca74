"""R adapters through rpy2 (Seurat, ComBat, edgeR, limma) and the shared R plumbing.

Skipped with the reason when rpy2, R or an R package is absent; the real-data checks are
skipped when the shared data folder is absent. Data: the CellBench CEL-seq2 vs Drop-seq pair
(same three cell lines, very different protocols: a known batch effect) and simulated counts
with planted DE genes.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("rpy2", reason="rpy2 not installed (pip install rpy2==3.5.17; needs R)")

from methods.base import MethodInputError, TaskSpec  # noqa: E402
from methods.registry import get, installed_r_packages  # noqa: E402
from peer_helpers import cellbench_pair, mixing, planted_de, purity, uncorrected_pca, auroc  # noqa: E402

pytestmark = pytest.mark.r
_R = installed_r_packages()
if _R is None:
    pytest.skip("R not found (apt-get install r-base-core)", allow_module_level=True)


def need(*pkgs):
    missing = [p for p in pkgs if p not in _R]
    if missing:
        pytest.skip(f"R package(s) {', '.join(missing)} not installed")


def run(name, adata, **task):
    spec = get(name)
    task.setdefault("params", {})
    task["params"] = {**spec.defaults, **task["params"]}
    return spec.fn(adata, TaskSpec(**task))


@pytest.fixture(scope="module")
def pair(shared_data_dir):
    return cellbench_pair(shared_data_dir)


@pytest.fixture(scope="module")
def baseline_mixing(pair):
    return mixing(uncorrected_pca(pair), pair.obs["batch"])


# ------------------------------------------------------------------ rbridge

def test_sparse_and_dense_round_trips():
    from methods import rbridge

    rng = np.random.default_rng(0)
    X = sp.random(50, 30, density=0.2, format="csr", random_state=1, dtype=np.float64)
    X.data = np.round(X.data * 10) + 1
    m = rbridge.csr_to_dgcmatrix(X, [f"g{i}" for i in range(30)], [f"c{i}" for i in range(50)])
    ro = rbridge.robjects()
    assert list(ro.r["dim"](m)) == [30, 50]  # genes x cells in R
    assert list(ro.r["class"](m)) == ["dgCMatrix"]
    assert abs(rbridge.dgcmatrix_to_csr(m) - X).max() == 0
    dense = rbridge.r_matrix_to_numpy(ro.r["as.matrix"](m), transpose=True)
    np.testing.assert_array_equal(dense, X.toarray())
    a = rng.normal(size=(4, 7))
    np.testing.assert_array_equal(rbridge.r_matrix_to_numpy(rbridge.numpy_to_r_matrix(a)), a)
    assert float(ro.r["sum"](m)[0]) == pytest.approx(X.sum())


def test_r_error_carries_r_message():
    from methods import rbridge

    fail = rbridge.r_function("function(x) stop('bad value: ', x)", "demo")
    with pytest.raises(rbridge.RError, match="bad value: 42"):
        fail(42)
    versions = rbridge.r_package_versions(["Matrix", "not.a.package"])
    assert versions["R"].startswith("4.") or versions["R"][0].isdigit()
    assert "Matrix" in versions and "not.a.package" not in versions


# ------------------------------------------------------------------ Seurat

def test_seurat_integration_mixes_the_protocols(pair, baseline_mixing):
    need("Seurat", "SeuratObject")
    out = run("seurat", pair, outputs=("embed", "correct"), n_latent=10)
    emb, corr = out["embedding"], out["corrected"]
    assert emb.shape == (pair.n_obs, 10) and corr.shape == pair.shape
    assert np.isfinite(emb).all() and np.isfinite(corr).all()
    # uncorrected PCA separates the protocols completely; anchors must mix them
    assert baseline_mixing < 0.05
    assert mixing(emb, pair.obs["batch"]) > baseline_mixing + 0.3
    assert purity(emb, pair.obs["cell_type"]) > 0.9  # and keep the cell lines apart
    assert out["extras"]["r_versions"]["Seurat"]


def test_seurat_caps_parameters_for_small_batches_and_is_deterministic(pair):
    need("Seurat", "SeuratObject")
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(pair.obs["batch"] == b), 15, replace=False)
                          for b in pair.obs["batch"].cat.categories])
    small = pair[np.sort(idx)].copy()
    out = run("seurat", small, outputs=("embed",), n_latent=5)
    assert out["embedding"].shape == (30, 5) and np.isfinite(out["embedding"]).all()
    # same seed, same numbers
    np.testing.assert_array_equal(out["embedding"], run("seurat", small, outputs=("embed",), n_latent=5)["embedding"])
    used = out["extras"]["used_params"]
    assert used["dims"] <= 13 and used["k_filter"] <= 14 and used["k_score"] <= 14


def test_seurat_rejects_a_single_batch(pair):
    need("Seurat", "SeuratObject")
    one = pair[pair.obs["batch"] == pair.obs["batch"].cat.categories[0]].copy()
    with pytest.raises(MethodInputError, match="batch"):
        run("seurat", one)


def test_seurat_transfer_labels_the_other_protocol(pair):
    need("Seurat", "SeuratObject")
    a = pair.copy()
    truth = a.obs["cell_type"].astype(str).to_numpy()
    a.obs["visible"] = a.obs["cell_type"].astype(object).where(a.obs["batch"] == "CEL-seq2_3cl")
    out = run("seurat_transfer", a, label_key="visible", outputs=("classify",))
    query = a.obs["visible"].isna().to_numpy()
    acc = (out["labels"][query] == truth[query]).mean()
    assert acc > 0.9  # chance is 1/3; FINDINGS: cell lines transfer near-perfectly here
    np.testing.assert_array_equal(out["labels"][~query], truth[~query])
    probs = out["probabilities"]
    assert list(probs.index) == list(a.obs_names) and sorted(probs.columns) == sorted(set(truth))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(probs.columns[probs.to_numpy().argmax(1)][query], out["labels"][query])


# ------------------------------------------------------------------ ComBat

@pytest.mark.parametrize("name", ["combat", "combat_seq"])
def test_combat_mixes_the_protocols(pair, baseline_mixing, name):
    need("sva")
    out = run(name, pair, outputs=("embed", "correct"), n_latent=10)
    assert out["corrected"].shape == pair.shape and np.isfinite(out["corrected"]).all()
    assert out["embedding"].shape == (pair.n_obs, 10) and np.isfinite(out["embedding"]).all()
    assert mixing(out["embedding"], pair.obs["batch"]) > baseline_mixing + 0.1
    assert purity(out["embedding"], pair.obs["cell_type"]) > 0.9


# ------------------------------------------------------------------ edgeR / limma

@pytest.fixture(scope="module")
def planted():
    return planted_de()


@pytest.mark.parametrize("name", ["edger", "limma_voom"])
@pytest.mark.parametrize("mode", ["cells", "pseudobulk"])
def test_de_recovers_planted_genes(planted, name, mode):
    need("edgeR", "limma")
    adata, truth = planted
    out = run(name, adata, outputs=("de",), de_key="cell_type", de_groups=("A", "B"), params={"mode": mode})
    de = out["de"]
    assert list(de.index) == list(adata.var_names)
    assert {"score", "logFC", "pvalue", "padj"} <= set(de.columns)
    assert np.isfinite(de["score"]).all() and (de["pvalue"].between(0, 1)).all()
    assert auroc(truth, de["score"]) > 0.95
    top = de["score"].nlargest(int(truth.sum())).index
    assert np.isin(top, adata.var_names[truth]).mean() > 0.8
    # direction: planted genes up in A have positive logFC (A is group 1)
    assert out["extras"]["mode"] == mode


def test_de_logfc_sign_and_bad_groups(planted):
    need("edgeR", "limma")
    adata, truth = planted
    out = run("edger", adata, outputs=("de",), de_key="cell_type", de_groups=("A", None), params={"mode": "cells"})
    A = adata.obs["cell_type"].to_numpy() == "A"
    X = adata.X.toarray()
    up = truth & (X[A].mean(0) > X[~A].mean(0))
    assert (out["de"].loc[adata.var_names[up], "logFC"] > 0).all()
    auto = run("limma_voom", adata, outputs=("de",), de_key="cell_type", de_groups=("A", "B"),
               params={"pseudobulk_min_cells": 100})
    assert auto["extras"]["mode"] == "pseudobulk" and auto["extras"]["n_samples"] == 12  # 2 groups x 2 batches x 3
    with pytest.raises(MethodInputError, match="de_groups"):
        run("edger", adata, outputs=("de",), de_key="cell_type")
    with pytest.raises(MethodInputError, match="'Z'"):
        run("limma_voom", adata, outputs=("de",), de_key="cell_type", de_groups=("Z", "A"))
