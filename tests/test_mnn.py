"""MNN (methods/native/mnn.py) against the real batchelor 1.14.1 outputs and on hand-made cases.

The reference folder (``shared/reference_r``, README there) holds batchelor's outputs for
CellBench CEL-seq2 vs Drop-seq with the exact log-expression input; those tests skip when the
folder is absent. The hand-checkable cases always run.
"""
from __future__ import annotations

import numpy as np
import pytest

from methods.native import mnn

@pytest.fixture(scope="module")
def cellbench(reference_r_dir):
    ref = reference_r_dir
    if not (ref / "cellbench_input_logcounts.mtx.gz").exists():
        pytest.skip(f"batchelor reference outputs not found in {ref} (set HARMONIZATION_BENCH_REFERENCE_R)")
    import pandas as pd
    import scipy.io

    x = scipy.io.mmread(ref / "cellbench_input_logcounts.mtx.gz").toarray().T  # cells x genes
    cells = pd.read_csv(ref / "cellbench_input_cells.csv.gz")
    first = cells["batch"].to_numpy() == cells["batch"].iloc[0]
    assert first[:240].all() and not first[240:].any()  # README: batch 1 cells, then batch 2
    read = lambda name: pd.read_csv(ref / name)  # noqa: E731
    return {"b1": x[first], "b2": x[~first], "read": read}


def _align_signs(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """Flip our columns to R's signs (PC signs depend on the LAPACK build)."""
    return ours * np.sign(np.sum(ours * theirs, axis=0))


# ----------------------------------------------------------------------------------------
# against batchelor
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("var_adj, fname", [(True, "cellbench_mnncorrect_corrected.csv.gz"),
                                            (False, "cellbench_mnncorrect_novaradj_corrected.csv.gz")])
def test_mnn_correct_matches_batchelor(cellbench, var_adj, fname):
    res = mnn.mnn_correct([cellbench["b1"], cellbench["b2"]], k=20, sigma=0.1, var_adj=var_adj)
    expected = cellbench["read"](fname).iloc[:, 1:].to_numpy().T  # genes x cells -> cells x genes
    assert res.corrected.shape == expected.shape == (450, 1000)
    np.testing.assert_allclose(res.corrected, expected, rtol=0, atol=1e-6)
    # var.adj must matter on this data, or the two comparisons would test the same thing
    assert var_adj or np.abs(expected - cellbench["read"]("cellbench_mnncorrect_corrected.csv.gz")
                             .iloc[:, 1:].to_numpy().T).max() > 1e-3


def test_mnn_correct_pairs_match_batchelor(cellbench):
    res = mnn.mnn_correct([cellbench["b1"], cellbench["b2"]], k=20, sigma=0.1)
    pairs = cellbench["read"]("cellbench_mnncorrect_pairs.csv.gz")
    left, right = res.pairs[0]
    np.testing.assert_array_equal(left + 1, pairs["left"].to_numpy())  # same pairs, same order
    np.testing.assert_array_equal(right + 1, pairs["right"].to_numpy())


def test_blocked_computation_gives_the_same_result(cellbench, monkeypatch):
    """Large inputs are processed in blocks; tiny blocks must not change a single number."""
    whole = mnn.mnn_correct([cellbench["b1"], cellbench["b2"]], k=20, sigma=0.1)
    monkeypatch.setattr(mnn, "_BLOCK_ENTRIES", 3000)  # blocks of a few cells
    blocked = mnn.mnn_correct([cellbench["b1"], cellbench["b2"]], k=20, sigma=0.1)
    np.testing.assert_allclose(blocked.corrected, whole.corrected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(blocked.pairs[0][1], whole.pairs[0][1])


def test_multi_batch_pca_matches_batchelor(cellbench):
    pca = mnn.multi_batch_pca([mnn.cosine_normalize(cellbench["b1"])[0],
                               mnn.cosine_normalize(cellbench["b2"])[0]], d=50)
    centers = cellbench["read"]("cellbench_fastmnn_input_pca_center.csv.gz")["center"].to_numpy()
    np.testing.assert_allclose(pca.centers, centers, rtol=0, atol=1e-12)
    rotation = cellbench["read"]("cellbench_fastmnn_rotation.csv.gz").iloc[:, 1:].to_numpy()
    signs = np.sign(np.sum(pca.rotation * rotation, axis=0))
    np.testing.assert_allclose(pca.rotation * signs, rotation, rtol=0, atol=1e-6)
    pcs = cellbench["read"]("cellbench_fastmnn_input_pcs.csv.gz").iloc[:, 1:].to_numpy()
    np.testing.assert_allclose(np.vstack(pca.pcs) * signs, pcs, rtol=0, atol=1e-6)


def test_fast_mnn_matches_batchelor(cellbench):
    res = mnn.fast_mnn([cellbench["b1"], cellbench["b2"]], k=20, d=50)
    expected = cellbench["read"]("cellbench_fastmnn_corrected.csv.gz").iloc[:, 1:].to_numpy()
    np.testing.assert_allclose(_align_signs(res.corrected, expected), expected, rtol=0, atol=1e-6)
    pairs = cellbench["read"]("cellbench_fastmnn_pairs.csv.gz")
    np.testing.assert_array_equal(res.pairs[0][0] + 1, pairs["left"].to_numpy())
    np.testing.assert_array_equal(res.pairs[0][1] + 1, pairs["right"].to_numpy())
    info = cellbench["read"]("cellbench_fastmnn_mergeinfo.csv.gz")
    np.testing.assert_allclose(res.lost_var[0], info[["lost_var_batch1", "lost_var_batch2"]].to_numpy()[0],
                               rtol=1e-9)
    np.testing.assert_allclose(res.batch_size, info["batch_size"].to_numpy(), rtol=1e-9)
    assert not res.skipped.any()


# ----------------------------------------------------------------------------------------
# hand-checkable cases (always run)
# ----------------------------------------------------------------------------------------
def test_find_mutual_nn_on_a_line():
    a = np.array([[0.0], [10.0], [20.0]])
    b = np.array([[10.5], [0.4], [100.0]])
    first, second = mnn.find_mutual_nn(a, b, k1=1)
    # 0<->1 and 10<->0 are mutual; 20's nearest is 10.5, whose nearest is 10: not mutual
    assert list(zip(first, second)) == [(0, 1), (1, 0)]


def test_cosine_normalize_unit_rows_and_zero_row():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    normed, l2 = mnn.cosine_normalize(x)
    np.testing.assert_allclose(normed[0], [0.6, 0.8])
    np.testing.assert_allclose(l2, [5.0, 1e-8])
    assert np.all(normed[1] == 0)


def _shifted_batches(seed=0, n=150, g=20, shift=3.0):
    """Three well-separated clusters; batch 2 = fresh cells from the same clusters + a shift."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, size=(3, g))
    lab1, lab2 = rng.integers(0, 3, n), rng.integers(0, 3, n + 20)
    b1 = centres[lab1] + rng.normal(0, 0.3, (n, g))
    offset = np.full(g, shift)
    b2 = centres[lab2] + rng.normal(0, 0.3, (n + 20, g)) + offset
    return b1, b2, lab1, lab2, offset


def test_mnn_correct_removes_a_constant_shift():
    b1, b2, lab1, lab2, offset = _shifted_batches()
    res = mnn.mnn_correct([b1, b2], k=10, sigma=1.0, cos_norm_in=False, cos_norm_out=False)
    corr2 = res.corrected[len(b1):]
    np.testing.assert_array_equal(res.corrected[:len(b1)], b1)  # the reference is untouched
    for c in range(3):  # each cluster lands on its batch-1 twin
        gap_before = np.linalg.norm(b2[lab2 == c].mean(0) - b1[lab1 == c].mean(0))
        gap_after = np.linalg.norm(corr2[lab2 == c].mean(0) - b1[lab1 == c].mean(0))
        assert gap_before == pytest.approx(np.linalg.norm(offset), rel=0.1)
        assert gap_after < 0.1 * gap_before


def test_fast_mnn_removes_a_constant_shift():
    b1, b2, lab1, lab2, _ = _shifted_batches(seed=1)
    res = mnn.fast_mnn([b1, b2], k=10, d=10, cos_norm=False)
    emb1, emb2 = res.corrected[:len(b1)], res.corrected[len(b1):]
    for c in range(3):
        assert np.linalg.norm(emb2[lab2 == c].mean(0) - emb1[lab1 == c].mean(0)) < 0.5
    assert res.batch_size[0] > 0.9  # a pure shift is a perfectly consistent batch vector


def test_min_batch_skip_skips_a_weak_batch_effect():
    rng = np.random.default_rng(2)
    b1, b2 = rng.normal(size=(80, 10)), rng.normal(size=(90, 10))  # no batch effect at all
    res = mnn.fast_mnn([b1, b2], k=10, d=5, cos_norm=False, min_batch_skip=0.9)
    assert res.skipped[0]
    pcs = mnn.multi_batch_pca([b1, b2], d=5)
    np.testing.assert_allclose(res.corrected, np.vstack(pcs.pcs), atol=1e-12)


def test_three_batches_merge_in_order():
    b1, b2, *_ = _shifted_batches(seed=3)
    b3 = b2 + 2.0
    res = mnn.mnn_correct([b1, b2, b3], k=10, sigma=1.0, cos_norm_in=False, cos_norm_out=False)
    assert res.corrected.shape == (len(b1) + 2 * len(b2), b1.shape[1])
    assert len(res.pairs) == 2
    left, right = res.pairs[1]
    assert left.max() < len(b1) + len(b2) <= right.min()  # step 2: merged (1+2) vs batch 3
    fm = mnn.fast_mnn([b1, b2, b3], k=10, d=10, cos_norm=False)
    assert fm.lost_var.shape == (2, 3) and np.all(fm.lost_var >= -1e-12)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="at least two batches"):
        mnn.mnn_correct([np.ones((5, 3))])
    with pytest.raises(ValueError, match="same genes"):
        mnn.fast_mnn([np.ones((5, 3)), np.ones((5, 4))])
    with pytest.raises(ValueError, match="NaN"):
        mnn.mnn_correct([np.ones((5, 3)), np.full((5, 3), np.nan)])


# ----------------------------------------------------------------------------------------
# adapters ("mnn", "fastmnn")
# ----------------------------------------------------------------------------------------
def _batchy_adata(seed=0, n_cells=240, n_genes=60):
    """Counts: 3 types with 8 marker genes each, 2 batches with gene-wise multiplicative effects
    (a batch effect that library-size normalisation does not remove)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    types = np.array(["A", "B", "C"])[rng.integers(0, 3, n_cells)]
    batch = np.where(rng.random(n_cells) < 0.5, "b0", "b1")
    mu = np.full((n_cells, n_genes), 2.0)
    for i, t in enumerate("ABC"):
        mu[types == t, i * 8:(i + 1) * 8] *= 10.0
    mu[batch == "b1"] *= rng.lognormal(0.0, 0.8, n_genes)  # gene-specific batch effect
    x = sp.csr_matrix(rng.poisson(mu).astype(np.float32))
    obs = pd.DataFrame({"batch": batch, "cell_type": types}, index=[f"c{i}" for i in range(n_cells)])
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(n_genes)]))


def _same_batch_fraction(emb, batch, k=10):
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1).fit(emb).kneighbors(emb, return_distance=False)[:, 1:]
    return float(np.mean(batch[idx] == batch[:, None]))


@pytest.mark.parametrize("name", ["mnn", "fastmnn"])
def test_mnn_adapters_mix_batches_and_keep_types(name):
    from methods import registry
    from methods.adapters._peers_common import counts_csr, log_normalize, pca
    from methods.base import TaskSpec

    adata = _batchy_adata()
    spec = registry.get(name)
    out = spec.fn(adata, TaskSpec(outputs=("embed", "correct"), n_latent=10, params={**spec.defaults, "backend": "python"}))
    emb = out["embedding"]
    assert emb.shape[0] == adata.n_obs and np.all(np.isfinite(emb))
    assert out["extras"]["backend"] == "python" and out["extras"]["merge_order"] == ["b0", "b1"]
    if name == "mnn":
        assert out["corrected"].shape == adata.shape
    batch = adata.obs["batch"].to_numpy()
    types = adata.obs["cell_type"].to_numpy()
    raw = pca(log_normalize(counts_csr(adata)).toarray(), 10)
    assert _same_batch_fraction(raw, batch) > 0.95  # the batch effect is real
    assert _same_batch_fraction(emb, batch) < 0.75  # and MNN mixes the batches
    assert _same_batch_fraction(emb, types) > 0.95  # without mixing the cell types


def test_mnn_adapter_rows_follow_obs_order():
    """Cells interleaved across batches come back in obs order, not batch-stacked."""
    from methods import registry
    from methods.base import TaskSpec
    from methods.native.mnn import mnn_correct
    from methods.adapters._peers_common import counts_csr, log_normalize

    adata = _batchy_adata(seed=1, n_cells=120)
    out = registry.get("mnn").fn(adata, TaskSpec(outputs=("correct",), params={"backend": "python", "k": 20}))
    x = log_normalize(counts_csr(adata)).toarray()
    b = adata.obs["batch"].to_numpy()
    direct = mnn_correct([x[b == "b0"], x[b == "b1"]], k=20)
    np.testing.assert_allclose(out["corrected"][b == "b0"], direct.corrected[: (b == "b0").sum()])
    np.testing.assert_allclose(out["corrected"][b == "b1"], direct.corrected[(b == "b0").sum():])


def test_mnn_adapter_bad_params_are_named():
    from methods import registry
    from methods.base import MethodInputError, TaskSpec

    adata = _batchy_adata(n_cells=60)
    with pytest.raises(MethodInputError, match="backend"):
        registry.get("mnn").fn(adata, TaskSpec(params={"backend": "julia"}))
    with pytest.raises(MethodInputError, match="merge_order"):
        registry.get("fastmnn").fn(adata, TaskSpec(params={"merge_order": ["b0", "zz"]}))
    one = adata[adata.obs["batch"] == "b0"].copy()
    with pytest.raises(MethodInputError, match="at least 2 batches"):
        registry.get("fastmnn").fn(one, TaskSpec(params={"backend": "python"}))


def test_r_backend_matches_python_backend():
    """When R batchelor is installed, both backends of the adapters give the same numbers."""
    pytest.importorskip("rpy2")
    from methods import registry
    from methods.base import TaskSpec

    if "batchelor" not in (registry.installed_r_packages() or ()):
        pytest.skip("R package batchelor is not installed (the Python port is used)")
    adata = _batchy_adata(n_cells=120)
    task = lambda b: TaskSpec(outputs=("correct",), params={"backend": b})  # noqa: E731
    r, py = registry.get("mnn").fn(adata, task("r")), registry.get("mnn").fn(adata, task("python"))
    assert r["extras"]["backend"] == "r"
    np.testing.assert_allclose(r["corrected"], py["corrected"], atol=1e-6)
    r, py = registry.get("fastmnn").fn(adata, task("r")), registry.get("fastmnn").fn(adata, task("python"))
    np.testing.assert_allclose(_align_signs(py["embedding"], r["embedding"]), r["embedding"], atol=1e-6)
