"""Each scenario on small simulated inputs: the numbers mean what they should (issue 7).

Cheap registered methods stand in for the expensive ones: ``pca`` (uncorrected), ``harmony``
(corrected), ``random_embedding`` (control), ``ttest`` (DE). One seed, tiny data.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark import runner
from benchmark.results import read_results
from benchmark.scenarios import SCENARIOS, get_scenario
from benchmark.scenarios.profiles import PAPER, QUICK, get_profile

TINY = QUICK.replace(name="tiny", scenario_params={}, sim_cells=500, sim_genes=200, k_values=(10, 30), default_k=20,
                     n_genes=200, n_seed_cells=10, n_bins=5, heldout_max_types=1, scaling_cells=(300, 600),
                     scaling_batches=(2,), scaling_genes=100, scib_metrics=("ilisi_knn", "silhouette_label"))


def run(tmp_path, scenario, methods, profile=TINY):
    return runner.run(scenario, datasets=["simulated"], methods=methods, profile=profile, cache_dir=False,
                      run_dir=tmp_path / scenario, progress=False, n_jobs=2)


def value(df, method, metric, **where):
    sel = (df.method == method) & (df.metric == metric)
    for col, v in where.items():
        sel &= df[col] == v
    assert sel.any(), f"no row {method}/{metric} {where}"
    return float(df.loc[sel, "value"].mean())


def test_registry_has_every_paper_scenario():
    assert list(SCENARIOS) == ["pair", "heldout", "annotation", "trajectory", "protein", "seed_labeling",
                               "hierarchy", "de_bulk", "scaling"]
    for sc in SCENARIOS.values():
        assert sc.figure and sc.description and sc.sources and sc.methods
    assert get_scenario("seed_labeling").paper[("scanvi", "weighted_accuracy")] == 0.84
    assert get_profile("paper").seeds == (0, 1, 2) and max(PAPER.k_values) == 500
    with pytest.raises(ValueError, match="Did you mean 'quick'"):
        get_profile("quik")


def test_pair_planted_batch_effect_lowers_uncorrected_mixing(tmp_path):
    df = run(tmp_path, "pair", ["pca", "harmony", "random_embedding"])
    assert (df.status == "ok").all(), df[df.status != "ok"].error.tolist()
    for k in (10, 30):
        pca, harmony = value(df, "pca", "batch_entropy_mixing", k=k), value(df, "harmony", "batch_entropy_mixing", k=k)
        assert pca < harmony - 0.1, (k, pca, harmony)
    # a random embedding mixes perfectly and keeps no structure: the two criteria pull apart
    assert value(df, "random_embedding", "batch_entropy_mixing", k=30) > 0.6
    assert value(df, "random_embedding", "knn_purity", k=30) < value(df, "pca", "knn_purity", k=30) - 0.2
    assert {"ilisi_knn", "silhouette_label"} <= set(df.metric)


def test_heldout_removed_type_scores_low_mixing(tmp_path):
    df = run(tmp_path, "heldout", ["harmony"])
    removed = df[df.dataset.str.contains(r"\[removed:")]
    assert not removed.empty
    for dataset, rows in removed.groupby("dataset"):
        c0 = dataset.split("removed:")[1].rstrip("]")
        mix = rows[rows.metric == "batch_entropy_mixing"].set_index("cell_type")["value"]
        others = mix.drop(c0)
        # the type present in one dataset only stays unmixed; the shared types mix
        assert mix[c0] < 0.2 and mix[c0] < others.min() - 0.15, (dataset, mix.to_dict())
    only = df[df.dataset.str.contains(r"\[only:") & (df.metric == "batch_entropy_mixing")]
    assert only["value"].max() < 0.3  # no biological overlap: nothing should mix


def test_annotation_knn_transfer_beats_the_majority_control(tmp_path):
    df = run(tmp_path, "annotation", ["pca", "majority_vote"])
    assert (df.status == "ok").all(), df[df.status != "ok"].error.tolist()
    knn = value(df, "pca+knn", "weighted_accuracy")
    control = value(df, "majority_vote", "weighted_accuracy")
    assert knn > 0.8 and control < 0.5, (knn, control)
    assert set(df.loc[df.metric == "per_class_accuracy", "cell_type"].dropna()) >= {"type_0", "type_1"}


def test_trajectory_bins_and_pseudotime_recovery(tmp_path):
    df = run(tmp_path, "trajectory", ["harmony", "random_embedding"])
    bins = df[(df.metric == "bin_batch_entropy") & (df.method == "harmony")]
    assert sorted(bins["bin"].astype(int)) == list(range(TINY.n_bins))
    assert ((bins.value >= 0) & (bins.value <= np.log(2) + 1e-9)).all()
    # a random latent mixes every bin fully and knows nothing of the pseudotime
    assert value(df, "random_embedding", "bin_batch_entropy") > 0.6
    assert abs(value(df, "random_embedding", "pseudotime_correlation")) < 0.15
    assert value(df, "harmony", "pseudotime_correlation") > value(df, "random_embedding", "pseudotime_correlation") + 0.2


def test_protein_consistency_separates_a_latent_from_a_random_one(tmp_path):
    df = run(tmp_path, "protein", ["pca", "random_embedding"], profile=TINY)
    assert value(df, "pca", "protein_knn_overlap", k=10) > 3 * value(df, "random_embedding", "protein_knn_overlap", k=10)
    assert value(df, "pca", "protein_knn_error", k=10) < value(df, "random_embedding", "protein_knn_error", k=10)


def test_seed_labeling_from_true_markers_beats_chance(tmp_path):
    df = run(tmp_path, "seed_labeling", ["pca"])
    chance = 1 / 4
    assert value(df, "signature_seeds", "accuracy") > 0.9  # seeds from the planted markers are right
    assert value(df, "pca+knn", "weighted_accuracy") > chance + 0.5
    assert value(df, "pca+kmeans", "weighted_accuracy") > chance + 0.3


def test_hierarchy_scores_both_levels(tmp_path):
    df = run(tmp_path, "hierarchy", ["pca"])
    fine = value(df, "pca+knn", "weighted_accuracy")
    coarse = value(df, "pca+knn", "weighted_accuracy_coarse")
    assert fine > 1 / 8 + 0.3 and coarse >= fine - 1e-9


def test_de_planted_genes_give_high_auroc(tmp_path):
    df = run(tmp_path, "de_bulk", ["ttest"])
    assert value(df, "ttest", "auroc") > 0.9
    assert value(df, "ttest", "kendall_tau") > 0.2


def test_scaling_fits_growth_exponents(tmp_path):
    df = run(tmp_path, "scaling", ["pca"])
    times = df[(df.metric == "wall_time_s") & (df.method == "pca")]
    assert len(times) == 2  # 300 and 600 cells at 2 batches
    exps = df[df.metric.str.endswith("_exponent_cells")]
    assert set(exps.metric) == {"time_exponent_cells", "memory_exponent_cells"}
    assert np.isfinite(exps.value).all()
    # resuming into the same folder refits the exponents instead of adding a second copy
    run(tmp_path, "scaling", ["pca"])
    on_disk = read_results(tmp_path / "scaling" / "results.csv")
    assert (on_disk.metric == "time_exponent_cells").sum() == 1
    assert (on_disk.metric == "wall_time_s").sum() == 2


def test_de_bulk_group_agreement_counts_cells_moved_into_a_group():
    from benchmark.scenarios.de_bulk import group_agreement

    index = [f"c{i}" for i in range(4)]
    own = pd.Series(["B", "B", "Mono", "T"], index=index, dtype=object)
    transferred = pd.Series(["DC", "T", "B", "DC"], index=index[::-1], dtype=object)  # aligned by cell name
    # by name: c0 B->DC, c1 B->B, c2 Mono->T, c3 T->DC; judged (B/DC by either label): c0, c1, c3; right: c1 only
    assert group_agreement(own, transferred, {"B": ("B",), "DC": ("DC",)}) == pytest.approx(1 / 3)


def test_de_bulk_joint_transfers_the_annotated_labels(shared_data_dir):
    from benchmark.scenarios.de_bulk import PBMC_PAIR, build
    from benchmark.scenarios.profiles import QUICK

    profile = QUICK.replace(method_params={"scvi": {"n_epochs": 3}}, n_genes=300)
    inputs = build(PBMC_PAIR, profile, 0)
    assert {i.dataset.split("[")[-1] for i in inputs} == {"CD4_vs_CD8]", "B_vs_DC]"}
    for i in inputs:
        assert list(i.adata.obs.columns) == ["cell_type", "batch", "de_group"]  # no own labels reach the methods
        assert 0.0 <= i.meta["transfer_accuracy"] <= 1.0
        assert set(i.adata.obs["de_group"].astype(str)) == set(i.task.de_groups)
        assert set(i.adata.obs["batch"].astype(str)) == {"pbmc_facs", "pbmc3k"}


def test_gene_set_reference_counts_the_sets_that_hold_each_gene(tmp_path, monkeypatch):
    from benchmark.scenarios.de_bulk import gene_set_reference

    refs = tmp_path / "de_references"
    refs.mkdir()
    (refs / "immunesigdb_CD4CD8.UP.gmt").write_text("S1\thttp://x\tCD8A\tCD8B\tCCR7\nS2\thttp://x\tCD8A\tGZMK\n")
    (refs / "immunesigdb_CD4CD8.DN.gmt").write_text("S3\thttp://x\tCD4\tCD8A\tNOT_MEASURED\n")
    monkeypatch.setenv("HARMONIZATION_BENCH_SHARED_DATA", str(tmp_path))
    genes = ["CD8A", "CD8B", "CD4", "GZMK", "ACTB"]
    ref = gene_set_reference("CD4_vs_CD8", genes, min_sets=2)
    assert list(ref.index) == genes
    assert ref["n_sets"].tolist() == [3, 1, 1, 1, 0]
    assert ref["padj"].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]  # only CD8A is in >= 2 sets
    assert (gene_set_reference("CD4_vs_CD8", genes, min_sets=1)["padj"] == 0).sum() == 4
    with pytest.raises(ValueError, match="no gene sets"):
        gene_set_reference("B_vs_DC", genes)
    (refs / "immunesigdb_CD4CD8.DN.gmt").unlink()
    with pytest.raises(FileNotFoundError, match="HARMONIZATION_BENCH_SHARED_DATA"):
        gene_set_reference("CD4_vs_CD8", genes)
