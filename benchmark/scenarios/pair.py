"""Pair harmonization (paper, "Harmonizing pairs of datasets", Figure 2).

Each dataset pair is harmonized by every method; scANVI runs twice, with the labels of one
dataset and then of the other. Scores: batch entropy of mixing and kNN purity (against each
dataset's own PCA) over k, the paper's range being 10 to 500, plus the scIB set (beyond the
paper; ``random_embedding`` and ``pca`` are its controls). The paper publishes these as curves
only (no numbers in the text): the comparison is qualitative, scVI mixing well while keeping
each dataset's structure better than Seurat Alignment, MNN, ComBat and PCA.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from methods.base import TaskSpec

from .base import (SIMULATED, Inputs, Scenario, embedding_of, log_normalize, masked, mixing_rows, pca,
                   per_batch_reference, purity_rows, source_label, truth_of)
from .inputs import PAPER_PAIRS, PBMC_PAIR, pair_source

UNSUPERVISED = ("scvi", "seurat", "mnn", "fastmnn", "combat", "pca", "seurat_nocca", "harmony", "scanorama",
                "random_embedding")


def build(source, profile, seed):
    adata, (a, b) = pair_source(source, profile, cell_cycle=True)
    cell_cycle = adata.obsm.pop("cell_cycle_scores", None)  # evaluation only: not shown to methods
    X_lognorm = log_normalize(adata.X)
    truth = truth_of(adata, batch_reference=per_batch_reference(adata, profile.n_latent, seed=0),
                     X_pre=pca(X_lognorm, profile.n_latent, seed=0),
                     cell_cycle=None if cell_cycle is None else (np.asarray(cell_cycle), X_lognorm))
    label = source_label(source, f"{a}|{b}")
    task = TaskSpec(n_latent=profile.n_latent, outputs=("embed",))
    batch = adata.obs["batch"].astype(str).to_numpy()
    out = [Inputs(label, masked(adata, np.ones(adata.n_obs, bool)), truth, task, methods=UNSUPERVISED)]
    for side in (a, b)[: 2 if profile.both_directions else 1]:  # labels of one side, then the other (paper)
        out.append(Inputs(label, masked(adata, batch != side), truth, task, methods=("scanvi",),
                          method_suffix=f"[labels:{side}]", meta={"labels_from": side}))
    return out


def score(inputs, result, profile):
    latent = embedding_of(result, profile.n_latent)
    if latent is None:
        raise ValueError(f"{result.method} returned neither an embedding nor corrected values")
    batches = inputs.truth["batch"]
    return (mixing_rows(latent, batches, profile.k_values, seed=0)
            + purity_rows(latent, batches, inputs.truth["batch_reference"], profile.k_values)
            + scib_rows(latent, batches, inputs.truth["labels"], inputs.truth["X_pre"], profile)
            + cell_cycle_rows(latent, batches, inputs.truth.get("cell_cycle")))


def scib_rows(latent, batches, labels, X_pre, profile):
    """The scIB set (beyond the paper) on the cells with a label, one graph for all metrics."""
    from benchmark.metrics.suite import scib_suite

    have = ~pd.isna(pd.Series(labels, dtype=object)).to_numpy()
    scores = scib_suite(latent[have], np.asarray(batches)[have], np.asarray(labels, dtype=object)[have],
                        X_pre[have], metrics=profile.scib_metrics, seed=0)
    return [dict(metric=name, value=value) for name, value in scores.items()]


def cell_cycle_rows(latent, batches, cell_cycle):
    """scIB cell-cycle conservation (scib 1.x): variance of the S/G2M scores (scored on all genes)
    explained by the latent vs by the unintegrated log-normalised input genes; none when the data
    lack the Tirosh et al. symbols (e.g. the simulator)."""
    if cell_cycle is None:
        return []
    from benchmark.metrics import cell_cycle_conservation

    scores, X_lognorm = cell_cycle
    return [dict(metric="cell_cycle_conservation",
                 value=cell_cycle_conservation(X_lognorm, latent, scores, np.asarray(batches)))]


SCENARIO = Scenario(
    name="pair",
    figure="Fig. 2",
    description="harmonize two datasets; batch entropy of mixing and kNN purity over k",
    sources=(SIMULATED, "cellbench_mixology", PBMC_PAIR) + PAPER_PAIRS,
    build=build,
    methods=UNSUPERVISED + ("scanvi",),
    score=score,
    outputs=("embed",),
    paper_notes="Fig. 2b-c shows curves only; scVI/scANVI mix as well as Seurat Alignment and keep "
                "higher kNN purity than every other method on all four pairs.",
)
