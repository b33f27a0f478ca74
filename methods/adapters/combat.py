"""ComBat through rpy2 (sva): empirical-Bayes location/scale batch correction.

The scANVI paper lists ComBat among the harmonization methods it benchmarked (Johnson et al.
2007; paper section "Benchmarked methods"). Two variants:

* ``combat``: ``sva::ComBat`` on log-normalised expression (log1p of counts per 10,000):
  ``correct`` = the adjusted log values, ``embed`` = PCA (``n_latent`` components) of them.
* ``combat_seq``: ``sva::ComBat_seq`` (Zhang et al. 2020) on the raw counts, a negative-binomial
  model that returns adjusted *counts*; ``correct`` = those counts log-normalised the same way
  (so both variants return the same kind of values), ``embed`` = PCA of that. When the installed
  sva has no ``ComBat_seq`` (sva < 3.36) the run is a ``skipped`` row that says so.

Neither uses labels (``mod = NULL``): the benchmark hides labels from harmonization methods.
ComBat needs dense genes x cells data; genes that are constant within a batch are left
unadjusted by sva (it says so), which keeps small inputs from failing.
"""
from __future__ import annotations

import numpy as np

from ..base import MethodUnavailable
from ..registry import register
from ._peers_common import batch_vector, counts_csr, log_normalize, need_batches, pca

_R_COMBAT = r"""
function(logdata, batch, par_prior, mean_only) {
  suppressPackageStartupMessages(library(sva))
  dat <- as.matrix(logdata)
  out <- suppressMessages(sva::ComBat(dat = dat, batch = batch, mod = NULL, par.prior = par_prior,
                                      mean.only = mean_only, prior.plots = FALSE))
  storage.mode(out) <- "double"
  out
}
"""

_R_COMBAT_SEQ = r"""
function(counts, batch, shrink) {
  suppressPackageStartupMessages(library(sva))
  if (!exists("ComBat_seq", envir = asNamespace("sva"))) stop("the installed sva has no ComBat_seq (needs sva >= 3.36)")
  cnt <- as.matrix(counts)
  storage.mode(cnt) <- "integer"
  out <- suppressMessages(sva::ComBat_seq(counts = cnt, batch = batch, group = NULL, shrink = shrink))
  storage.mode(out) <- "double"
  out
}
"""

CITATION = ("Johnson WE, Li C, Rabinovic A. Adjusting batch effects in microarray expression data using "
            "empirical Bayes methods. Biostatistics 2007")
CITATION_SEQ = "Zhang Y, Parmigiani G, Johnson WE. ComBat-seq: batch effect adjustment for RNA-seq count data. NAR Genom Bioinform 2020"
URL = "https://bioconductor.org/packages/sva/"


def _outputs(corrected: np.ndarray, task) -> dict:
    out = {"corrected": corrected}
    if "embed" in (task.outputs or ("embed",)):
        out["embedding"] = pca(corrected, task.n_latent, seed=task.seed)
    return out


@register(
    name="combat",
    capabilities=("embed", "correct"),
    language="r",
    requires_r=("sva",),
    defaults={"par_prior": True, "mean_only": False},
    citation=CITATION,
    url=URL,
    description="sva::ComBat on log-normalised data (correct); PCA of the corrected values (embed)",
)
def combat(adata, task):
    """ComBat on log-normalised expression; embed = PCA of the corrected values."""
    from .. import rbridge

    batches = batch_vector(adata, task.batch_key)
    need_batches(batches, task.batch_key, "combat")
    rbridge.require_r_packages("sva")
    logx = log_normalize(counts_csr(adata))
    fn = rbridge.r_function(_R_COMBAT, "sva::ComBat")
    res = fn(rbridge.csr_to_dgcmatrix(logx), np.asarray(batches, dtype=object),
             par_prior=bool(task.params.get("par_prior", True)),
             mean_only=bool(task.params.get("mean_only", False)))
    corrected = rbridge.r_matrix_to_numpy(res, transpose=True)  # genes x cells in R
    out = _outputs(corrected, task)
    out["extras"] = {"r_versions": rbridge.r_package_versions(["sva"])}
    return out


@register(
    name="combat_seq",
    capabilities=("embed", "correct"),
    language="r",
    requires_r=("sva",),
    defaults={"shrink": False},
    citation=CITATION_SEQ,
    url=URL,
    description="sva::ComBat_seq on counts; corrected = log-normalised adjusted counts, embed = their PCA",
)
def combat_seq(adata, task):
    """ComBat-seq on raw counts; corrected = log-normalised adjusted counts; embed = their PCA."""
    from .. import rbridge

    batches = batch_vector(adata, task.batch_key)
    need_batches(batches, task.batch_key, "combat_seq")
    rbridge.require_r_packages("sva")
    ro = rbridge.robjects()
    if not ro.r('exists("ComBat_seq", envir = asNamespace("sva"))')[0]:
        raise MethodUnavailable("the installed R package sva has no ComBat_seq (needs sva >= 3.36)")
    fn = rbridge.r_function(_R_COMBAT_SEQ, "sva::ComBat_seq")
    res = fn(rbridge.csr_to_dgcmatrix(counts_csr(adata)), np.asarray(batches, dtype=object),
             shrink=bool(task.params.get("shrink", False)))
    adjusted = rbridge.r_matrix_to_numpy(res, transpose=True)
    corrected = log_normalize(adjusted).toarray()
    out = _outputs(corrected, task)
    out["extras"] = {"r_versions": rbridge.r_package_versions(["sva"])}
    return out
