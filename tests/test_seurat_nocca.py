"""The Seurat-like CCA-free baseline: ScaleData(split.by = batch) semantics and the adapter."""
import numpy as np
import pytest

from benchmark import metrics as M
from methods.adapters.seurat_nocca import scale_data
from methods.base import MethodInputError, TaskSpec


def toy_matrix(n_per: int = 20):
    """2 * n_per cells x 4 genes in groups a/b; genes 1 and 3 are constant in group b, gene 2 has
    an outlier in group b."""
    rng = np.random.default_rng(3)
    X = np.log1p(rng.poisson(1.0, size=(2 * n_per, 4)).astype(float))
    X[:, 1] = np.log1p(np.r_[0, np.full(2 * n_per - 1, 4.0)])  # one low cell: a large negative z in group a
    X[n_per:, 3] = 1.5
    X[n_per + 5, 2] = 30.0
    return X, np.repeat(["a", "b"], n_per)


def test_scale_data_centres_and_scales_within_each_group():
    X, g = toy_matrix()
    S = scale_data(X, g)
    for grp, genes in (("a", [0, 1, 2, 3]), ("b", [0, 2])):
        block = S[g == grp][:, genes]
        np.testing.assert_allclose(block.mean(0), 0, atol=1e-12)
        np.testing.assert_allclose(block.std(0, ddof=1), 1, atol=1e-12)
    assert (S[g == "b"][:, [1, 3]] == 0).all()  # constant within the group -> 0, not NaN
    assert S[0, 1] == pytest.approx(-19 / np.sqrt(20))  # one low cell of n: z = -(n - 1) / sqrt(n)


def test_scale_data_clips_above_scale_max_only():
    X = np.r_[np.zeros(199), 5.0][:, None] * np.array([1.0, -1.0])
    S = scale_data(X)
    assert S[-1, 0] == 10.0  # z = 199 / sqrt(200) ~ 14.1, clipped at scale.max
    assert S[-1, 1] == pytest.approx(-199 / np.sqrt(200))  # Seurat does not clip below
    with pytest.raises(MethodInputError, match="one batch per cell"):
        scale_data(X, np.array(["a"] * 3))
    with pytest.raises(MethodInputError, match="NaN"):
        scale_data(X, np.r_[np.full(199, "a", dtype=object), np.nan])


def test_scale_data_matches_seurat_scaledata_split_by():
    pytest.importorskip("rpy2", reason="rpy2 not installed")
    from methods import rbridge
    from methods.registry import installed_r_packages

    if "Seurat" not in (installed_r_packages() or ()):
        pytest.skip("R package Seurat not installed")
    X, g = toy_matrix(n_per=150)  # groups large enough for z > 10 (one outlier of n: (n - 1) / sqrt(n))
    scale = rbridge.r_function(
        "function(m, g) { suppressMessages(library(Seurat)); rownames(m) <- paste0('g', 1:nrow(m));"
        " colnames(m) <- paste0('c', 1:ncol(m)); ScaleData(m, split.by = g, verbose = FALSE) }", "ScaleData")
    theirs = rbridge.r_matrix_to_numpy(scale(rbridge.numpy_to_r_matrix(X.T), g), transpose=True)
    ours = scale_data(X, g)
    # gene 1 is constant (log1p(4)) in group b: R's sd of those equal floats is ~1e-16, not 0, so
    # Seurat returns rounding noise (0.97) there; ours returns 0 as for any constant gene
    varying = np.ones_like(X, dtype=bool)
    varying[g == "b", 1] = False
    np.testing.assert_allclose(ours[varying], theirs[varying], atol=1e-10)
    assert (ours[~varying] == 0).all()
    assert theirs.max() == 10.0 and theirs.min() < -10  # Seurat clips above scale.max only


def run(name, adata, **params):
    from methods import registry

    spec = registry.get(name)
    return spec.fn(adata, TaskSpec(seed=0, params={**spec.defaults, **params}))


def test_adapter_is_registered_and_removes_the_batch_shift(tiny_adata):
    from methods import registry

    registry.load_all(entry_points=False)
    assert "seurat_nocca" in registry.all_methods() and registry.get("seurat_nocca").can("embed")
    out = run("seurat_nocca", tiny_adata, genes="all")
    Z = out["embedding"]
    assert Z.shape == (tiny_adata.n_obs, 10) and np.isfinite(Z).all()
    np.testing.assert_allclose(Z, run("seurat_nocca", tiny_adata, genes="all")["embedding"])  # seeded
    assert out["extras"]["scale_split_by"] == "batch"
    # tiny_adata doubles every gene in batch b1: the uncorrected PCA separates the batches,
    # per-batch scaling mixes them and keeps the three types apart
    b, y = tiny_adata.obs["batch"].to_numpy(), tiny_adata.obs["cell_type"].to_numpy()
    pca = run("pca", tiny_adata, genes="all")["embedding"]
    mix = {name: M.batch_entropy_mixing(E, b, k=15, seed=0) for name, E in (("pca", pca), ("nocca", Z))}
    assert mix["nocca"] > mix["pca"] + 0.1
    assert M.silhouette_label(Z, y) > 0.5


def test_adapter_needs_the_batch_column(tiny_adata):
    a = tiny_adata.copy()
    del a.obs["batch"]
    with pytest.raises(MethodInputError, match="batch_key"):
        run("seurat_nocca", a, genes="all")
