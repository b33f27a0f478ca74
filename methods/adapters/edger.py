"""Differential expression peers through rpy2: edgeR quasi-likelihood and limma-voom.

The paper's DE section compares scVI/scANVI Bayes factors with bulk references and with
edgeR-style tests (paper section "Differential expression"). These adapters give the ``de``
capability for a comparison ``task.de_groups = (group1, group2)`` of the column ``task.de_key``
(``group2 = None``: group1 against every other labelled cell).

Two ways to use the cells, chosen by ``params["mode"]``:

* ``"cells"``: every cell is a sample. The design holds the cellular detection rate (fraction
  of genes detected, centred) as a covariate, the "edgeRQLFDetRate" / "voomlimma" set-up that did
  well in Soneson & Robinson (Nat Methods 2018), plus batch when it is not confounded with group.
* ``"pseudobulk"``: counts are summed into pseudo-replicates: each (group, batch) cell set is
  split at random (seeded) into up to ``n_pseudo_replicates`` parts of at least
  ``min_cells_per_replicate`` cells. Batch enters the design when estimable.
* ``"auto"`` (default): pseudo-bulk when the compared cells number at least
  ``pseudobulk_min_cells`` (per-cell GLMs on thousands of cells are slow and over-confident),
  else per-cell.

Output ``de`` (indexed by gene, all input genes): ``score = -log10(p)`` (floored at 1e-300;
higher = more DE, direction-free, so AUROC against an unsigned truth is well defined),
``signed_score = sign(logFC) * score``, ``logFC`` (log2, group1 over group2), ``pvalue``,
``padj`` (BH). Genes with no count in the compared cells get p = 1, logFC = 0.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..base import MethodInputError
from ..registry import register
from ._peers_common import counts_csr, de_frame, de_groups

_R_DE = r"""
function(counts, group, batch, cdr, engine) {
  suppressPackageStartupMessages({library(edgeR); library(limma)})
  cnt <- as.matrix(counts)
  group <- factor(group, levels = c("g2", "g1"))
  covars <- data.frame(group = group)
  if (!is.null(cdr)) covars$cdr <- cdr - mean(cdr)
  use_batch <- !is.null(batch) && length(unique(batch)) > 1
  if (use_batch) covars$batch <- factor(batch)
  form <- paste("~", paste(rev(colnames(covars)), collapse = " + "))
  design <- model.matrix(as.formula(form), data = covars)
  if (qr(design)$rank < ncol(design)) {  # batch confounded with group: drop it
    covars$batch <- NULL; use_batch <- FALSE
    design <- model.matrix(as.formula(paste("~", paste(rev(colnames(covars)), collapse = " + "))), data = covars)
  }
  y <- DGEList(counts = cnt)
  y <- calcNormFactors(y)
  if (engine == "edger") {
    y <- estimateDisp(y, design)
    fit <- glmQLFit(y, design, robust = TRUE)
    tt <- topTags(glmQLFTest(fit, coef = "groupg1"), n = Inf, sort.by = "none")$table
    res <- list(logFC = tt$logFC, pvalue = tt$PValue)
  } else {
    v <- voom(y, design)
    fit <- eBayes(lmFit(v, design), robust = TRUE)
    tt <- topTable(fit, coef = "groupg1", number = Inf, sort.by = "none")
    res <- list(logFC = tt$logFC, pvalue = tt$P.Value)
  }
  res$design <- colnames(design)
  res
}
"""

_DEFAULTS = {"mode": "auto", "pseudobulk_min_cells": 2000, "n_pseudo_replicates": 3,
             "min_cells_per_replicate": 10}


def pseudo_replicates(groups: np.ndarray, batches: np.ndarray, n_rep: int, min_cells: int,
                      seed: int) -> np.ndarray:
    """Sample id per cell: each (group, batch) set split at random into up to ``n_rep`` parts of
    at least ``min_cells`` cells (at least one part). Pure and seeded."""
    rng = np.random.default_rng(seed)
    sample = np.empty(len(groups), dtype=object)
    for g in np.unique(groups):
        for b in np.unique(batches):
            idx = np.flatnonzero((groups == g) & (batches == b))
            if len(idx) == 0:
                continue
            parts = int(max(1, min(n_rep, len(idx) // max(1, min_cells))))
            for r, chunk in enumerate(np.array_split(rng.permutation(idx), parts)):
                sample[chunk] = f"{g}|{b}|{r}"
    return sample


def _run_de(adata, task, engine: str) -> dict:
    from .. import rbridge

    p = {**_DEFAULTS, **(task.params or {})}
    mode = p["mode"]
    if mode not in ("auto", "cells", "pseudobulk"):
        raise MethodInputError(f"params['mode'] must be 'auto', 'cells' or 'pseudobulk', got {mode!r}")
    m1, m2, name1, name2 = de_groups(adata, task)
    X = counts_csr(adata)
    sel = np.flatnonzero(m1 | m2)
    Xs = X[sel]
    group = np.where(m1[sel], "g1", "g2")
    batches = (adata.obs[task.batch_key].astype(str).to_numpy()[sel]
               if task.batch_key in adata.obs else np.full(len(sel), "b"))
    if mode == "auto":
        mode = "pseudobulk" if len(sel) >= int(p["pseudobulk_min_cells"]) else "cells"

    expressed = np.asarray((Xs > 0).sum(axis=0)).ravel() > 0
    if expressed.sum() < 2:
        raise MethodInputError(f"DE {name1} vs {name2}: fewer than 2 genes have counts in the compared cells")
    Xs = Xs[:, expressed]
    if mode == "pseudobulk":
        sample = pseudo_replicates(group, batches, int(p["n_pseudo_replicates"]),
                                   int(p["min_cells_per_replicate"]), int(task.seed))
        names, inv = np.unique(sample, return_inverse=True)
        agg = sp.csr_matrix((np.ones(len(sel)), (inv, np.arange(len(sel)))), shape=(len(names), len(sel)))
        Xs = (agg @ Xs).tocsr()
        first = np.array([np.flatnonzero(inv == i)[0] for i in range(len(names))])
        group, batches = group[first], batches[first]
        cdr = None
        for g in ("g1", "g2"):
            if (group == g).sum() < 2:
                raise MethodInputError(
                    f"pseudo-bulk DE needs >= 2 pseudo-replicates per group; {name1 if g == 'g1' else name2!r} "
                    f"has {(group == g).sum()}: lower params['min_cells_per_replicate'] or use mode='cells'")
    else:
        cdr = np.asarray((Xs > 0).sum(axis=1)).ravel() / Xs.shape[1]

    rbridge.require_r_packages("edgeR", "limma")
    fn = rbridge.r_function(_R_DE, "edgeR" if engine == "edger" else "limma-voom")
    res = rbridge.r_list_to_dict(fn(rbridge.csr_to_dgcmatrix(Xs), np.asarray(group, dtype=object),
                                    np.asarray(batches, dtype=object), cdr, engine))
    logfc = np.zeros(X.shape[1])
    pval = np.ones(X.shape[1])
    logfc[expressed] = rbridge.r_vector_to_numpy(res["logFC"])
    pval[expressed] = rbridge.r_vector_to_numpy(res["pvalue"])
    de = de_frame(adata.var_names, logfc, pval)
    return {"de": de, "extras": {
        "mode": mode, "n_samples": int(Xs.shape[0]), "groups": (name1, name2),
        "design": list(rbridge.r_vector_to_numpy(res["design"])),
        "r_versions": rbridge.r_package_versions(["edgeR", "limma"]),
    }}


@register(
    name="edger",
    capabilities=("de",),
    language="r",
    requires_r=("edgeR", "limma"),
    defaults=dict(_DEFAULTS),
    citation=("Lun ATL, Chen Y, Smyth GK. It's DE-licious: a recipe for differential expression analyses of "
              "RNA-seq experiments using quasi-likelihood methods in edgeR. Methods Mol Biol 2016"),
    url="https://bioconductor.org/packages/edgeR/",
    description="edgeR quasi-likelihood DE (glmQLFit/glmQLFTest); pseudo-bulk when cells are many",
)
def edger(adata, task):
    """edgeR QL F-test, per cell (with detection rate) or on seeded pseudo-replicates."""
    return _run_de(adata, task, "edger")


@register(
    name="limma_voom",
    capabilities=("de",),
    language="r",
    requires_r=("edgeR", "limma"),
    defaults=dict(_DEFAULTS),
    citation=("Law CW, Chen Y, Shi W, Smyth GK. voom: precision weights unlock linear model analysis tools "
              "for RNA-seq read counts. Genome Biol 2014"),
    url="https://bioconductor.org/packages/limma/",
    description="limma-voom DE (voom/lmFit/eBayes); pseudo-bulk when cells are many",
)
def limma_voom(adata, task):
    """limma-voom moderated t-test, per cell (with detection rate) or on seeded pseudo-replicates."""
    return _run_de(adata, task, "limma")
