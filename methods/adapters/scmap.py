"""scmap label projection: ``scmap_cluster`` and ``scmap_cell`` (Kiselev et al. 2018).

The scANVI paper uses scmap-cluster as an annotation baseline (Methods, "Algorithms for
benchmarking"): the cells with a visible label are the reference, the unlabelled cells the
query. scmap is not packaged for our R, so by default these run our faithful Python port
(:mod:`methods.native.scmap`, which reproduces scmap 1.9.3's selected genes, cluster index,
labels, similarities and cell-index search); when the R package scmap is installed,
``backend="auto"`` uses it. ``extras["backend"]`` says which one ran.

Both take log2(CPM + 1) of ``adata.X`` (scmap's convention), select ``n_features`` genes on the
reference by the dropout model, and return labels for ALL cells: labelled cells keep their own
label, query cells get scmap's label, "unassigned" becomes NaN. ``extras["similarity"]`` holds
scmap's similarity per cell (NaN for reference cells and undefined similarities).

* ``scmap_cluster``: nearest cluster centroid by cosine/Pearson/Spearman, ``threshold`` 0.7.
* ``scmap_cell``: product-quantisation index (k-means seeded by ``task.seed``), ``w`` = 10
  approximate cosine neighbours; label when the first 3 agree and similarity > 0.5.
  ``extras["neighbors"]`` / ``["neighbor_similarities"]``: per query cell, the neighbours as
  positions in ``adata.obs`` (scmap's buffer order).
"""
from __future__ import annotations

import numpy as np

from ..base import MethodInputError
from ..rbridge import choose_backend
from ..registry import register
from ._peers_common import counts_csr

CITATION = ("Kiselev VY, Yiu A, Hemberg M. scmap: projection of single-cell RNA-seq data across data sets. "
            "Nat Methods 2018")
URL = "https://bioconductor.org/packages/scmap/"
NATIVE_VERSION = "harmonization-bench native port of scmap 1.9.3"

_R_SCMAP = r"""
function(counts, logcounts, genes, labels, is_ref, mode, n_features, threshold, w, seed) {
  suppressPackageStartupMessages({library(SingleCellExperiment); library(scmap)})
  rownames(counts) <- genes; rownames(logcounts) <- genes
  make <- function(keep) {
    sce <- SingleCellExperiment(list(counts = counts[, keep, drop = FALSE],
                                     logcounts = logcounts[, keep, drop = FALSE]))
    rowData(sce)$feature_symbol <- genes
    sce
  }
  ref <- make(is_ref); query <- make(!is_ref)
  ref$cell_type1 <- labels[is_ref]
  ref <- selectFeatures(ref, n_features = n_features, suppress_plot = TRUE)
  version <- as.character(utils::packageVersion("scmap"))
  if (mode == "cluster") {
    ref <- indexCluster(ref, cluster_col = "cell_type1")
    res <- scmapCluster(projection = query, index_list = list(ref = metadata(ref)$scmap_cluster_index),
                        threshold = threshold)
    return(list(labels = as.character(res$scmap_cluster_labs[, 1]),
                siml = as.numeric(res$scmap_cluster_siml[, 1]), version = version))
  }
  set.seed(seed)
  ref <- indexCell(ref)
  scr <- scmapCell(projection = query, index_list = list(ref = metadata(ref)$scmap_cell_index), w = w)
  s2c <- scmapCell2Cluster(scr, cluster_list = list(ref = as.character(ref$cell_type1)), w = 3,
                           threshold = threshold)
  list(labels = as.character(s2c$scmap_cluster_labs[, 1]), siml = as.numeric(s2c$scmap_cluster_siml[, 1]),
       cells = t(scr$ref$cells), sims = t(scr$ref$similarities), version = version)
}
"""


def _reference_and_query(adata, task, method: str):
    """Counts, log2(CPM+1), gene names, visible labels and the reference mask, checked."""
    from ..native.scmap import log2_cpm

    if task.label_key not in adata.obs:
        raise MethodInputError(f"obs[{task.label_key!r}] (task.label_key) is missing; add the visible labels")
    labels = adata.obs[task.label_key]
    is_ref = labels.notna().to_numpy()
    if is_ref.sum() < 2 or (~is_ref).sum() < 1:
        raise MethodInputError(
            f"{method} needs >= 2 labelled cells (reference) and >= 1 unlabelled cell (query) in "
            f"obs[{task.label_key!r}]; got {int(is_ref.sum())} labelled, {int((~is_ref).sum())} unlabelled")
    counts = counts_csr(adata).astype(np.float64)
    empty = np.asarray(counts.sum(axis=1)).ravel() <= 0
    if empty.any():
        raise MethodInputError(f"{method}: {int(empty.sum())} cells have no counts; filter empty cells first")
    genes = np.asarray(adata.var_names, dtype=str)
    return counts, log2_cpm(counts), genes, labels[is_ref].astype(str).to_numpy(), is_ref


def _all_labels(adata, task, is_ref, query_labels) -> np.ndarray:
    """Labels for every cell: reference keeps its own, "unassigned" -> NaN."""
    from ..native.scmap import UNASSIGNED

    out = np.empty(adata.n_obs, dtype=object)
    out[is_ref] = adata.obs[task.label_key][is_ref].astype(str).to_numpy()
    q = np.asarray(query_labels, dtype=object)
    out[~is_ref] = np.where(q == UNASSIGNED, np.nan, q)
    return out


def _similarity_all(is_ref, siml) -> np.ndarray:
    out = np.full(is_ref.size, np.nan)
    out[~is_ref] = siml
    return out


def _run_r(mode, counts, logc, genes, ref_labels, is_ref, task, threshold, w=10):
    from .. import rbridge

    rbridge.require_r_packages("scmap", "SingleCellExperiment")
    labels_full = np.full(is_ref.size, "", dtype=object)
    labels_full[is_ref] = ref_labels
    fn = rbridge.r_function(_R_SCMAP, f"scmap::scmap{mode.capitalize()}")
    res = rbridge.r_list_to_dict(fn(
        rbridge.csr_to_dgcmatrix(counts), rbridge.csr_to_dgcmatrix(logc), genes.astype(object), labels_full,
        is_ref, mode=mode, n_features=int(task.params.get("n_features", 500)), threshold=float(threshold),
        w=int(w), seed=int(task.seed)))
    return res, str(rbridge.r_vector_to_numpy(res["version"])[0])


@register(
    name="scmap_cluster",
    capabilities=("classify",),
    uses_labels=True,
    defaults={"n_features": 500, "threshold": 0.7, "backend": "auto"},
    citation=CITATION,
    url=URL,
    version=NATIVE_VERSION + " (R scmap when installed)",
    description="scmap-cluster: nearest reference-cluster centroid (cosine/Pearson/Spearman consensus)",
)
def scmap_cluster(adata, task):
    """scmap-cluster: labelled cells are the reference clusters, unlabelled cells are projected."""
    p = task.params
    counts, logc, genes, ref_labels, is_ref = _reference_and_query(adata, task, "scmap_cluster")
    threshold = float(p.get("threshold", 0.7))
    backend = choose_backend(p.get("backend", "auto"), "scmap")
    extras = {"backend": backend}
    if backend == "r":
        from .. import rbridge

        res, version = _run_r("cluster", counts, logc, genes, ref_labels, is_ref, task, threshold)
        q_labels, siml = rbridge.r_vector_to_numpy(res["labels"]), rbridge.r_vector_to_numpy(res["siml"])
    else:
        from ..native import scmap

        ref_c, ref_l = counts[is_ref], logc[is_ref]
        fs = scmap.select_features(ref_c, ref_l, genes, n_features=int(p.get("n_features", 500)))
        index = scmap.index_cluster(ref_l, genes, ref_labels, fs.selected_genes)
        out = scmap.scmap_cluster(logc[~is_ref], genes, index, threshold=threshold)
        q_labels, siml, version = out.labels, out.siml, NATIVE_VERSION
        extras.update(features=fs.selected_genes.tolist(), clusters=list(index.columns))
    labels = _all_labels(adata, task, is_ref, q_labels)
    extras.update(backend_version=version, similarity=_similarity_all(is_ref, np.asarray(siml, dtype=float)),
                  n_unassigned=int(np.sum(_isna(labels[~is_ref]))))
    return {"labels": labels, "extras": extras}


@register(
    name="scmap_cell",
    capabilities=("classify",),
    uses_labels=True,
    defaults={"n_features": 500, "w": 10, "threshold": 0.5, "M": None, "k": None, "backend": "auto"},
    citation=CITATION,
    url=URL,
    version=NATIVE_VERSION + " (R scmap when installed)",
    description="scmap-cell: approximate cosine kNN to reference cells (product quantisation index)",
)
def scmap_cell(adata, task):
    """scmap-cell: product-quantisation kNN search of the labelled cells; label by the first 3."""
    p = task.params
    counts, logc, genes, ref_labels, is_ref = _reference_and_query(adata, task, "scmap_cell")
    threshold, w = float(p.get("threshold", 0.5)), int(p.get("w", 10))
    if is_ref.sum() < 3:
        raise MethodInputError(f"scmap_cell needs >= 3 labelled cells in obs[{task.label_key!r}], "
                               f"got {int(is_ref.sum())}")
    if w < 3:
        raise MethodInputError(f"params['w'] must be >= 3 (scmapCell2Cluster reads the first 3 neighbours), got {w}")
    backend = choose_backend(p.get("backend", "auto"), "scmap")
    if backend == "r" and (p.get("M") is not None or p.get("k") is not None):
        backend = "python"  # the R path runs scmap's defaults only; keep the requested M/k
    ref_rows = np.flatnonzero(is_ref)
    extras = {"backend": backend}
    if backend == "r":
        from .. import rbridge

        res, version = _run_r("cell", counts, logc, genes, ref_labels, is_ref, task, threshold, w)
        q_labels, siml = rbridge.r_vector_to_numpy(res["labels"]), rbridge.r_vector_to_numpy(res["siml"])
        cells = rbridge.r_matrix_to_numpy(res["cells"]).astype(np.int64) - 1
        sims = rbridge.r_matrix_to_numpy(res["sims"])
    else:
        from ..native import scmap

        ref_c, ref_l = counts[is_ref], logc[is_ref]
        fs = scmap.select_features(ref_c, ref_l, genes, n_features=int(p.get("n_features", 500)))
        index = scmap.index_cell(ref_l, genes, fs.selected_genes, M=p.get("M"), k=p.get("k"), seed=int(task.seed))
        found = scmap.scmap_cell(logc[~is_ref], genes, index, w=min(w, int(is_ref.sum())))
        q_labels, siml = scmap.scmap_cell_to_cluster(found, ref_labels, w=3, threshold=threshold)
        cells, sims, version = found.cells, found.similarities, NATIVE_VERSION
        extras.update(features=fs.selected_genes.tolist(), n_chunks=index.n_chunks)
    labels = _all_labels(adata, task, is_ref, q_labels)
    extras.update(backend_version=version, similarity=_similarity_all(is_ref, np.asarray(siml, dtype=float)),
                  n_unassigned=int(np.sum(_isna(labels[~is_ref]))),
                  neighbors=ref_rows[cells], neighbor_similarities=sims)
    return {"labels": labels, "extras": extras}


def _isna(values) -> np.ndarray:
    """NaN/None mask of an object array."""
    import pandas as pd

    return pd.isna(pd.Series(values, dtype=object)).to_numpy()
