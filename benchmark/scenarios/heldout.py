"""Held-out cell types (paper, "Harmonizing datasets with a different composition of cell types",
Figure 3).

For every cell type c0 in turn, two stress tests on a pair (A = the paper's PBMC-CITE, kept whole;
B = PBMC-8K, perturbed):

* ``only:c0``: A keeps only c0, B has every type but c0 (no biological overlap, Fig. 3a-d);
* ``removed:c0``: c0 is removed from B only (Fig. 3e-i).

Scores: batch entropy of mixing per cell type at the default k (``cell_type`` = the type whose
cells are the query cells U; their neighbours come from all cells), so the removed type's own
mixing is the row whose ``cell_type`` equals the c0 in the dataset label (it must stay low: the
type must not be forced onto other types), and kNN purity. scANVI sees the labels of the
dataset that keeps several types (A in ``removed``, B in ``only``; the paper used PBMC-CITE's).
"""
from __future__ import annotations

import numpy as np

from methods.base import TaskSpec

from .base import (SIMULATED, Inputs, Scenario, embedding_of, masked, mixing_rows, per_batch_reference,
                   purity_rows, source_label, truth_of)
from .inputs import PAPER_HELDOUT, PBMC_PAIR, pair_source

METHODS = ("scvi", "scanvi", "seurat", "pca", "harmony", "combat", "mnn", "scanorama")
MIN_CELLS = 20  # a type with fewer cells in either dataset is not tried as c0


def variants(adata, a, b, max_types):
    """(variant name, c0, kept-cells mask) for each stress test and each eligible type."""
    batch = adata.obs["batch"].astype(str).to_numpy()
    types = adata.obs["cell_type"].astype(str).to_numpy()
    shared = [t for t in sorted(set(types)) if ((types == t) & (batch == a)).sum() >= MIN_CELLS
              and ((types == t) & (batch == b)).sum() >= MIN_CELLS]
    for c0 in shared[:max_types] if max_types else shared:
        only = np.where(batch == a, types == c0, types != c0)
        removed = ~((batch == b) & (types == c0))
        yield "only", c0, only
        yield "removed", c0, removed


def build(source, profile, seed):
    # simulated cell types as discrete clusters (no trajectory continuum between types)
    adata, (a, b) = pair_source(source, profile, trajectory=False)
    out = []
    for variant, c0, keep in variants(adata, a, b, profile.heldout_max_types):
        sub = adata[keep].copy()
        batch = sub.obs["batch"].astype(str).to_numpy()
        truth = truth_of(sub, batch_reference=per_batch_reference(sub, profile.n_latent, seed=0))
        label = source_label(source, f"{variant}:{c0}")
        task = TaskSpec(n_latent=profile.n_latent, outputs=("embed",))
        labelled = b if variant == "only" else a
        meta = {"variant": variant, "heldout": c0}
        out.append(Inputs(label, masked(sub, np.ones(sub.n_obs, bool)), truth, task,
                          methods=tuple(m for m in METHODS if m != "scanvi"), meta=meta))
        out.append(Inputs(label, masked(sub, batch != labelled), truth, task, methods=("scanvi",),
                          meta={**meta, "labels_from": labelled}))
    if not out:
        raise ValueError(f"{source}: no cell type has >= {MIN_CELLS} cells in both datasets")
    return out


def score(inputs, result, profile):
    latent = embedding_of(result, profile.n_latent)
    batches, labels = inputs.truth["batch"], np.asarray(inputs.truth["labels"]).astype(str)
    rows = []
    for t in sorted(set(labels)):
        rows += mixing_rows(latent, batches, [profile.default_k], seed=0, cells=labels == t, cell_type=t)
    rows += purity_rows(latent, batches, inputs.truth["batch_reference"], [profile.default_k])
    return rows


SCENARIO = Scenario(
    name="heldout",
    figure="Fig. 3",
    description="one dataset keeps only c0 / c0 removed from one dataset; per-type mixing and purity",
    sources=(SIMULATED, "cellbench_mixology", PBMC_PAIR) + PAPER_HELDOUT,
    build=build,
    methods=METHODS,
    score=score,
    paper_notes="Fig. 3 boxplots only: the removed type's entropy of mixing is low for scVI, scANVI "
                "and Seurat Alignment (slightly lowest for scVI/scANVI); shared types mix well and "
                "scVI/scANVI keep higher purity than Seurat.",
)
