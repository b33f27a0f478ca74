"""The registered scvi / scanvi methods: contract of the outputs, DE on the simulator."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from methods import registry
from methods.base import MethodInputError, TaskSpec

SCANVI_VARIANTS = ["scanvi", "scanvi_joint", "scanvi_hierarchical", "scanvi_from_scvi"]


def _simulate(**kw):
    datasets = pytest.importorskip("datasets")
    if not hasattr(datasets, "simulate"):
        pytest.skip("datasets.simulate is not available yet")
    return datasets.simulate(**kw)


@pytest.fixture(scope="module")
def sim():
    a = _simulate(n_cells=300, n_genes=80, n_batches=2, n_cell_types=4, seed=1)
    vis = a.obs["cell_type"].astype(object).copy()
    vis[np.random.default_rng(0).random(a.n_obs) < 0.6] = np.nan
    a.obs["visible"] = pd.Categorical(vis)
    return a


def _task(a, **kw):
    types = list(a.obs["cell_type"].cat.categories)
    base = dict(label_key="visible", seed=0, outputs=("embed", "correct", "classify", "de"),
                params={"n_epochs": 4, "n_hidden": 32, "de_n_samples": 300}, de_key="cell_type",
                de_groups=(types[0], types[1]), hierarchy=dict(a.uns["hierarchy"]), n_threads=1)
    base.update(kw)
    return TaskSpec(**base)


def test_methods_are_registered_with_capabilities():
    assert set(registry.get("scvi").capabilities) == {"embed", "correct", "de"}
    for name in SCANVI_VARIANTS:
        spec = registry.get(name)
        assert spec.uses_labels and set(spec.capabilities) == {"embed", "correct", "classify", "de"}


def test_scvi_adapter_outputs(sim):
    out = registry.get("scvi").fn(sim, _task(sim))
    assert out["embedding"].shape == (sim.n_obs, 10)
    assert out["corrected"].shape == sim.shape and np.isfinite(out["corrected"]).all()
    de = out["de"]
    assert list(de.index) == list(sim.var_names)
    assert {"score", "proba", "lfc_mean", "expr_frac1", "expr_frac2"} <= set(de.columns)
    assert "labels" not in out
    # the defaults that ran are recorded: population change on the ZINB mean, estimated threshold
    assert out["extras"]["de_compare"] == "population" and out["extras"]["de_expression"] == "mean"
    assert (de["delta"] == de["delta"].iloc[0]).all() and de["delta"].iloc[0] != 0.25


def test_outputs_only_when_asked(sim):
    out = registry.get("scvi").fn(sim, _task(sim, outputs=("embed",), n_latent=5))
    assert out["embedding"].shape == (sim.n_obs, 5) and "corrected" not in out and "de" not in out


@pytest.mark.parametrize("name", SCANVI_VARIANTS)
def test_scanvi_variants_label_every_cell(sim, name):
    out = registry.get(name).fn(sim, _task(sim))
    assert len(out["labels"]) == sim.n_obs
    classes = set(sim.obs["visible"].dropna().astype(str))
    assert set(out["labels"]) <= set(out["probabilities"].columns)
    assert classes <= set(out["probabilities"].columns)
    np.testing.assert_allclose(out["probabilities"].to_numpy().sum(1), 1.0, rtol=1e-5)
    assert list(out["probabilities"].index) == list(sim.obs_names)
    np.testing.assert_allclose(out["extras"]["max_posterior"], out["probabilities"].max(1))
    # the DE groups are label classes: scANVI conditions on them (paper), de_key != label_key or not
    assert out["extras"]["de_mode"] == "labels" and out["de"]["score"].notna().all()
    if name == "scanvi_hierarchical":
        levels = out["extras"]["levels"]
        assert set(levels) == {"fine", "coarse"}
        coarse_of = sim.uns["hierarchy"]
        # the coarse prediction is the parent's group with the most mass; it is a valid group
        assert set(levels["coarse"]) <= set(coarse_of.values())


def test_scanvi_without_label_column_raises(sim):
    with pytest.raises(MethodInputError, match="label_key"):
        registry.get("scanvi").fn(sim, _task(sim, label_key="nope"))


def test_de_bayes_factors_recover_planted_genes_on_simulator():
    torch.set_num_threads(1)
    a = _simulate(n_cells=600, n_genes=200, n_batches=2, n_cell_types=3, seed=0, trajectory=False)
    t = list(a.obs["cell_type"].cat.categories)
    truth = a.uns["de_genes"]
    truth = truth[(truth.group1 == t[0]) & (truth.group2 == t[1]) & (truth.log2_fold_change.abs() > 1)]
    task = TaskSpec(seed=0, outputs=("embed", "de"), params={"n_epochs": 40, "de_n_samples": 2000},
                    de_key="cell_type", de_groups=(t[0], t[1]), n_threads=1)
    de = registry.get("scvi").fn(a, task)["de"]
    planted = np.isin(de.index, truth.gene)
    assert planted.sum() >= 10
    assert roc_auc_score(planted, de["score"]) > 0.9
    # signs agree with the true fold change for the strongly called genes
    called = de.loc[truth.gene[truth.gene.isin(de.index[de["is_de"]])]]
    sign_truth = np.sign(truth.set_index("gene").loc[called.index, "log2_fold_change"])
    assert (np.sign(called["signed_score"]) == sign_truth).mean() > 0.9
