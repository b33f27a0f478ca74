"""Cell-cycle conservation (scib 1.x ``metrics.cell_cycle``): gene lists, gene-set scores, the
metric against scib's own numbers on a real dataset, and its place in the scIB suite."""

import numpy as np
import pytest
import scipy.sparse as sp

from benchmark import metrics as M
from benchmark.metrics import MetricInputError
from benchmark.metrics.cell_cycle_genes import (G2M_GENES, S_GENES, cell_cycle_genes,
                                                present_cell_cycle_genes)
from benchmark.metrics.conservation import cell_cycle_scores


def test_tirosh_lists_and_organisms():
    assert len(S_GENES) == 43 and len(G2M_GENES) == 54
    assert len(set(S_GENES) | set(G2M_GENES)) == 97  # no duplicate, no gene in both phases
    s, g2m = cell_cycle_genes("mouse")
    assert s[0] == "Mcm5" and "Mki67" in g2m and len(s) == 43
    org, s_found, g_found = present_cell_cycle_genes(["Mcm5", "Pcna", "Mki67", "GAPDH"])
    assert org == "mouse" and s_found == ["Mcm5", "Pcna"] and g_found == ["Mki67"]
    assert present_cell_cycle_genes(["MCM5", "Mki67"], "human")[1:] == (["MCM5"], [])
    with pytest.raises(MetricInputError, match="organism"):
        cell_cycle_genes("yeast")


def test_gene_set_score_by_hand():
    # g0, g1, g2 tie in mean expression (one bin); g3 sits in another bin: the controls of {g0}
    # are g1 and g2, so the score is g0 minus their mean
    X = np.array([[1.0, 0.0, 2.0, 9.0], [1.0, 2.0, 0.0, 7.0], [1.0, 1.0, 1.0, 8.0]])
    names = ["g0", "g1", "g2", "g3"]
    np.testing.assert_allclose(M.gene_set_score(X, names, ["g0"]), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(M.gene_set_score(sp.csr_matrix(X), names, ["g0"]), [0.0, 0.0, 0.0])
    X[:, 0] = [3.0, 0.0, 0.0]  # same mean, so the same bins: score = g0 - (g1 + g2) / 2
    np.testing.assert_allclose(M.gene_set_score(X, names, ["g0"]), [2.0, -1.0, -1.0])
    with pytest.raises(MetricInputError, match="control genes"):
        M.gene_set_score(X, names, ["g3"])  # alone in its bin
    with pytest.raises(MetricInputError, match="one per column"):
        M.gene_set_score(X, names[:3], ["g0"])


def test_cell_cycle_scores_need_the_genes():
    X = np.ones((6, 3))
    with pytest.raises(MetricInputError, match="0 S and 0 G2/M"):
        cell_cycle_scores(X, ["ENSG1", "ENSG2", "ENSG3"], ["a"] * 6)


def test_pcr_top_pcs_by_arpack_match_the_full_svd():
    # cell_cycle_conservation asks PCR for the top PCs only (ARPACK, as scanpy/scib): same value
    # as taking them from the full SVD, on a wide matrix where ARPACK's branch is the one taken
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 120)) * np.linspace(3.0, 0.5, 120)
    cov = X[:, :2] @ np.array([[1.0, 0.5], [-0.3, 2.0]]) + rng.normal(size=(80, 2))
    full = M.principal_component_regression(X, cov, n_components=10)
    arpack = M.principal_component_regression(X, cov, n_components=10, svd_solver="arpack")
    assert 0.01 < full < 1 and arpack == pytest.approx(full, abs=1e-10)
    with pytest.raises(MetricInputError, match="svd_solver"):
        M.principal_component_regression(X, cov, n_components=10, svd_solver="randomized")


@pytest.fixture(scope="module")
def mixology(shared_data_dir):
    """cellbench_mixology log-normalised (1e4), all genes, plus a PCA of its top-variance genes."""
    import anndata
    from sklearn.decomposition import PCA

    a = anndata.read_h5ad(shared_data_dir / "cellbench_mixology.h5ad")
    X = sp.csr_matrix(a.X, dtype=np.float64)
    L = sp.csr_matrix(sp.diags(1e4 / np.asarray(X.sum(1)).ravel()) @ X)
    L.data = np.log1p(L.data)
    D = L.toarray()
    pca = PCA(30, svd_solver="full").fit_transform(D[:, np.argsort(-D.var(0))[:2000]])
    return {"L": L, "genes": np.asarray(a.var_names), "batches": a.obs["batch"].astype(str).to_numpy(),
            "labels": a.obs["cell_type"].astype(str).to_numpy(), "pca": pca,
            "random": np.random.default_rng(0).normal(size=(a.n_obs, 10))}


def test_matches_scib_cell_cycle_on_cellbench(mixology):
    # golden values from scib 1.1.7 / scanpy 1.11.5 on the same inputs (cell_cycle(..., embed=...,
    # organism="human"), 5 batches); our S/G2M scores matched scanpy's to 4e-15 in that run
    cc = cell_cycle_scores(mixology["L"], mixology["genes"], mixology["batches"])
    assert cc.shape == (mixology["L"].shape[0], 2) and cc.std(0).min() > 0.1
    scib_values = {"pca": 0.31884249332092296, "random": 0.10429371240644683}
    for name, value in scib_values.items():
        ours = M.cell_cycle_conservation(mixology["L"], mixology[name], cc, mixology["batches"])
        assert ours == pytest.approx(value, abs=1e-6)


def test_suite_adds_cell_cycle_only_with_enough_genes(mixology):
    m = mixology
    args = (m["pca"], m["batches"], m["labels"], m["pca"])
    full = M.scib_suite(*args, metrics=("graph_connectivity",), expression=m["L"], gene_names=m["genes"])
    assert full["cell_cycle_conservation"] == pytest.approx(0.31884249332092296, abs=1e-6)
    assert "cell_cycle_conservation" not in M.scib_suite(*args, metrics=("graph_connectivity",))
    with pytest.warns(UserWarning, match="cell_cycle_conservation skipped"):
        few = M.scib_suite(*args, metrics=("graph_connectivity",), expression=m["L"][:, :500],
                           gene_names=m["genes"][:500])
    assert set(few) == {"graph_connectivity"}
    with pytest.raises(MetricInputError, match="gene_names"):  # refused before any gene lookup
        M.scib_suite(*args, metrics=("graph_connectivity",), expression=m["L"], gene_names=m["genes"][:10])
    with pytest.raises(MetricInputError, match="same cells"):
        M.scib_suite(*args, metrics=("graph_connectivity",), expression=m["L"][:10], gene_names=m["genes"])
