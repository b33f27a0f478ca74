"""Trajectory binning (paper, "Harmonizing continuous trajectories", Figure 4 / HEMATO).

Two datasets of one continuous process are harmonized; the batch entropy of mixing is reported
within each of 20 pseudotime bins (cells ordered by the true pseudotime), with kNN purity and
the recovery of the pseudotime from the latent (Spearman correlation of the latent's diffusion
pseudotime with the true one).

Inputs: the simulator's branching trajectory in two batches; and, since the paper's second
dataset (HEMATO-Tusi) is not available, each real trajectory stand-in split into two halves
with a planted technical effect in the second (per-gene binomial thinning) and that half's most
differentiated cells (top 10% pseudotime) removed, as HEMATO-Tusi's terminal states exist in
one dataset only. Mixing should therefore drop in the last bins.
"""
from __future__ import annotations

import numpy as np

from methods.base import TaskSpec

from .base import (SIMULATED, Inputs, Scenario, embedding_of, masked, per_batch_reference, purity_rows,
                   source_label, truth_of)
from .inputs import load, prepare, simulated_pair, split_with_batch_effect

METHODS = ("scvi", "scanvi", "seurat", "pca", "harmony", "combat", "mnn", "scanorama", "random_embedding")
TERMINAL_QUANTILE = 0.9


def trajectory_input(source, profile):
    if source == SIMULATED:
        a = simulated_pair(profile, n_cell_types=4)
        a = a[np.isfinite(a.obs["pseudotime"].to_numpy(float))].copy()  # the trajectory's cells
        return prepare(a, profile)
    a = load(source)
    a = prepare(a, profile)
    t = a.obs["pseudotime"].to_numpy(float)
    a = a[np.isfinite(t)].copy()
    t = a.obs["pseudotime"].to_numpy(float)
    return split_with_batch_effect(a, seed=0, names=(f"{source}_A", f"{source}_B"),
                                   drop_b=t > np.quantile(t, TERMINAL_QUANTILE))


def build(source, profile, seed):
    adata = trajectory_input(source, profile)
    truth = truth_of(adata, pseudotime=adata.obs["pseudotime"].to_numpy(float),
                     batch_reference=per_batch_reference(adata, profile.n_latent, seed=0))
    label = source_label(source, "|".join(map(str, adata.obs["batch"].cat.categories)))
    task = TaskSpec(n_latent=profile.n_latent, outputs=("embed",))
    batch = adata.obs["batch"].astype(str).to_numpy()
    first = str(adata.obs["batch"].cat.categories[0])
    return [Inputs(label, masked(adata, np.ones(adata.n_obs, bool)), truth, task,
                   methods=tuple(m for m in METHODS if m != "scanvi")),
            # scANVI gets the categorical states of one dataset (paper: "provided it with the
            # categorical labels of cells along the two developmental trajectories")
            Inputs(label, masked(adata, batch != first), truth, task, methods=("scanvi",))]


def score(inputs, result, profile):
    from benchmark.metrics.neighbors import compute_neighbors
    from benchmark.metrics.trajectory import bin_batch_entropy, pseudotime_correlation

    latent = embedding_of(result, profile.n_latent)
    batches, t = inputs.truth["batch"], inputs.truth["pseudotime"]
    nn = compute_neighbors(latent, max(profile.default_k, 15), seed=0)
    bins = bin_batch_entropy(nn, batches, t, n_bins=profile.n_bins, k=profile.default_k)
    rows = [dict(metric="bin_batch_entropy", bin=int(r.bin), k=profile.default_k, value=float(r.value))
            for r in bins.itertuples()]
    rows.append(dict(metric="pseudotime_correlation", value=pseudotime_correlation(nn.subset(15), t)))
    rows += purity_rows(latent, batches, inputs.truth["batch_reference"], profile.k_values)
    return rows


SCENARIO = Scenario(
    name="trajectory",
    figure="Fig. 4",
    description="two datasets of one process; batch entropy in 20 pseudotime bins, pseudotime recovery",
    sources=(SIMULATED, "paul15_tradeseq", "pancreas_endocrinogenesis"),
    build=build,
    methods=METHODS,
    score=score,
    paper_notes="Fig. 4c: mixing is high along most of the trajectory and drops at the extremes "
                "(terminal states unique to one dataset) for scVI and Seurat; Fig. 4d: scVI and "
                "scANVI keep higher kNN purity than Seurat. Curves only, no number in the text.",
)
