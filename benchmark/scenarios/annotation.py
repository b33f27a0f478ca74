"""Annotation / label transfer between datasets (paper, "Transferring cell type annotations
between datasets", Figures 4, 9, 10).

The labels of one dataset of a pair are visible, the other's hidden; each is predicted:
scANVI's classifier, scmap-cluster/cell, Seurat label transfer, the kNN/majority controls, and a
kNN classifier (k = 10, as the paper) on every method's latent (rows ``<method>+knn``).
Scores on the hidden cells: accuracy, weighted accuracy (the paper's headline), per-class
accuracy, and the calibration of posterior probabilities where a method gives them.
"""
from __future__ import annotations

import numpy as np

from methods.base import TaskSpec

from .base import (SIMULATED, Inputs, Scenario, calibration_rows, classification_rows, embedding_of,
                   knn_transfer, masked, source_label, truth_of)
from .inputs import PAPER_PAIRS, PBMC_PAIR, pair_source

EMBEDDERS = ("scvi", "seurat", "pca", "harmony", "combat", "mnn", "fastmnn", "scanorama")
CLASSIFIERS = ("scanvi", "scmap_cluster", "scmap_cell", "seurat_transfer", "majority_vote")


def build(source, profile, seed):
    # simulated cell types as discrete clusters (no trajectory continuum between types)
    adata, (a, b) = pair_source(source, profile, trajectory=False)
    batch = adata.obs["batch"].astype(str).to_numpy()
    out = []
    for ref, query in ((a, b), (b, a))[: 2 if profile.both_directions else 1]:
        hidden = batch == query
        truth = truth_of(adata, hidden=hidden)
        # only classes the reference knows can be predicted: others are not scored
        known = set(adata.obs["cell_type"].astype(str)[~hidden])
        truth["eval_labels"] = np.array([t if (h and t in known) else np.nan
                                         for t, h in zip(truth["labels"].astype(str), hidden)], dtype=object)
        task = TaskSpec(n_latent=profile.n_latent, outputs=("embed", "classify"))
        out.append(Inputs(source_label(source, f"{ref}->{query}"), masked(adata, hidden), truth, task,
                          meta={"reference": ref, "query": query}))
    return out


def score(inputs, result, profile):
    y = inputs.truth["eval_labels"]
    rows = []
    if result.labels is not None:
        rows += classification_rows(y, result.labels)
        if result.probabilities is not None:
            rows += calibration_rows(y, result.labels, result.probabilities)
    latent = embedding_of(result, profile.n_latent) if result.embedding is not None or result.corrected is not None else None
    if latent is not None:
        labels = inputs.truth["labels"]
        pred = knn_transfer(latent, labels, ~inputs.truth["hidden"], k=10)
        rows += classification_rows(y, pred, method=f"{result.method}+knn")
    return rows


SCENARIO = Scenario(
    name="annotation",
    figure="Figs. 4, 9, 10",
    description="labels of one dataset predicted on the other; accuracy, weighted accuracy, calibration",
    sources=(SIMULATED, "cellbench_mixology", PBMC_PAIR) + PAPER_PAIRS,
    build=build,
    methods=EMBEDDERS + CLASSIFIERS,
    score=score,
    outputs=("embed", "classify"),
    paper_notes="Supp. Figs. 9-10: on computationally derived labels the differences are mild, "
                "scANVI slightly ahead; no single number is published in the text.",
)
