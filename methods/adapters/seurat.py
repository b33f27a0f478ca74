"""Seurat through rpy2: anchor integration ("seurat") and anchor label transfer ("seurat_transfer").

The scANVI paper compared against "Seurat Alignment" (CCA; Butler et al. 2018; paper section
"Benchmarked methods"). Today's Seurat implements that idea as anchor integration
(Stuart et al. 2019): CCA between batches, mutual nearest anchors, anchor scoring and a weighted
correction. We run it as follows.

* Seurat 4 (and Seurat 5 when corrected values are asked for): ``FindIntegrationAnchors``
  (``reduction = "cca"``) + ``IntegrateData`` on all input genes; ``embed`` = PCA (``n_latent``
  components) of the integrated assay, ``correct`` = the integrated (log-normalised, corrected)
  values.
* Seurat 5 (``IntegrateLayers`` present): ``embed`` = ``IntegrateLayers(method =
  CCAIntegration)`` on the per-batch layers (the first ``n_latent`` integrated PCs).
* Label transfer: reference = the cells with a visible label, query = the others;
  ``FindTransferAnchors`` + ``TransferData``.

Small inputs: Seurat's defaults (dims 30, k.filter 200, k.score 30, k.weight 100 / 50) assume
hundreds of cells per batch; each is capped by the cells of the smallest batch (and k.weight
by the anchors found) so that a 40-cell batch integrates instead of erroring.
Genes and cells are renamed G1.. / C1.. inside R (Seurat rewrites names with "_" or "|") and
mapped back by position.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..base import MethodInputError
from ..registry import register
from ._peers_common import batch_vector, counts_csr, need_batches

CITATION = ("Stuart T, Butler A, et al. Comprehensive Integration of Single-Cell Data. Cell 2019; "
            "Butler A, et al. Integrating single-cell transcriptomic data across different conditions, "
            "technologies, and species. Nat Biotechnol 2018")
URL = "https://satijalab.org/seurat/"

_R_COMMON = r"""
.hb_v5 <- function() utils::packageVersion("Seurat") >= "5.0.0"
.hb_assay_data <- function(obj, assay, what) {
  if (.hb_v5()) SeuratObject::LayerData(obj, assay = assay, layer = what)
  else Seurat::GetAssayData(obj, assay = assay, slot = what)
}
.hb_cap <- function(value, limit) as.integer(max(1, min(value, limit)))
# vst variable features; when every gene would be kept anyway (the input is already a gene
# selection) set them directly: same features, and vst's loess fits are the slowest step here
.hb_prepare <- function(o, nfeatures) {
  if (nfeatures >= nrow(o)) { VariableFeatures(o) <- rownames(o); return(o) }
  FindVariableFeatures(o, selection.method = "vst", nfeatures = nfeatures, verbose = FALSE)
}
"""

_R_INTEGRATE = _R_COMMON + r"""
function(counts, batch, seed, n_latent, nfeatures, dims, k_anchor, k_filter, k_score, k_weight,
         want_embed, want_corrected, integration) {
  suppressPackageStartupMessages(library(Seurat))
  set.seed(seed)
  genes <- rownames(counts); cells <- colnames(counts)
  md <- data.frame(batch = batch, row.names = cells)
  n_min <- min(table(batch))
  nfeatures <- .hb_cap(nfeatures, length(genes))
  # the per-batch PCA that weights anchors needs dims < cells - 1
  dims <- .hb_cap(dims, min(n_min - 2, nfeatures - 1))
  k_anchor <- .hb_cap(k_anchor, n_min - 1)
  k_filter <- .hb_cap(k_filter, n_min - 1)
  k_score <- .hb_cap(k_score, n_min - 1)
  has_layers <- .hb_v5() && exists("IntegrateLayers", envir = asNamespace("Seurat"))
  if (integration == "auto") integration <- if (has_layers) "layers" else "anchors"
  if (integration == "layers" && !has_layers) stop("integration = 'layers' needs Seurat >= 5 (IntegrateLayers)")
  out <- list(seurat = as.character(utils::packageVersion("Seurat")), integration = integration,
              dims = dims, k_anchor = k_anchor, k_filter = k_filter, k_score = k_score)

  if (want_embed && integration == "layers") {
    op <- options(Seurat.object.assay.version = "v5"); on.exit(options(op), add = TRUE)
    obj <- CreateSeuratObject(counts = counts, meta.data = md, min.cells = 0, min.features = 0)
    obj[["RNA"]] <- split(obj[["RNA"]], f = obj$batch)
    obj <- NormalizeData(obj, verbose = FALSE)
    obj <- FindVariableFeatures(obj, nfeatures = nfeatures, verbose = FALSE)
    obj <- ScaleData(obj, verbose = FALSE)
    npcs <- max(dims, min(n_latent, length(cells) - 1, nfeatures - 1))
    obj <- RunPCA(obj, npcs = npcs, verbose = FALSE, seed.use = seed)
    obj <- IntegrateLayers(obj, method = CCAIntegration, orig.reduction = "pca",
                           new.reduction = "integrated.cca", dims = 1:dims,
                           k.weight = .hb_cap(k_weight, n_min - 1), k.filter = k_filter,
                           k.anchor = k_anchor, k.score = k_score, verbose = FALSE)
    emb <- Embeddings(obj, reduction = "integrated.cca")[cells, , drop = FALSE]
    out$embedding <- emb[, seq_len(min(n_latent, ncol(emb))), drop = FALSE]
    options(op)
  }
  if (want_corrected || (want_embed && integration == "anchors")) {
    op <- options(Seurat.object.assay.version = "v3"); on.exit(options(op), add = TRUE)
    obj <- CreateSeuratObject(counts = counts, meta.data = md, min.cells = 0, min.features = 0)
    objs <- SplitObject(obj, split.by = "batch")
    objs <- lapply(objs, function(o) .hb_prepare(NormalizeData(o, verbose = FALSE), nfeatures))
    features <- if (nfeatures >= length(genes)) genes else
      SelectIntegrationFeatures(objs, nfeatures = nfeatures, verbose = FALSE)
    anchors <- FindIntegrationAnchors(objs, anchor.features = features, reduction = "cca",
                                      dims = 1:dims, k.anchor = k_anchor, k.filter = k_filter,
                                      k.score = k_score, verbose = FALSE)
    # each query cell weights its k.weight nearest anchors: cap by the anchors of the poorest batch
    a <- anchors@anchors
    per_batch <- sapply(unique(a$dataset2), function(d) length(unique(a$cell2[a$dataset2 == d])))
    k_w <- .hb_cap(k_weight, min(n_min - 1, min(per_batch)))
    out$k_weight <- k_w
    out$n_anchors <- nrow(a)
    integ <- IntegrateData(anchors, features.to.integrate = genes, dims = 1:dims,
                           k.weight = k_w, verbose = FALSE)
    DefaultAssay(integ) <- "integrated"
    if (want_embed && integration == "anchors") {
      integ <- ScaleData(integ, verbose = FALSE)
      npcs <- .hb_cap(n_latent, min(length(cells) - 1, length(features) - 1))
      integ <- RunPCA(integ, npcs = npcs, features = features, verbose = FALSE, seed.use = seed)
      out$embedding <- Embeddings(integ, reduction = "pca")[cells, , drop = FALSE]
    }
    if (want_corrected) {
      m <- .hb_assay_data(integ, "integrated", "data")
      out$corrected <- as.matrix(m[genes, cells, drop = FALSE])
    }
    options(op)
  }
  out
}
"""

_R_TRANSFER = _R_COMMON + r"""
function(counts, labels, is_ref, seed, nfeatures, dims, k_anchor, k_filter, k_score, k_weight,
         reduction) {
  suppressPackageStartupMessages(library(Seurat))
  set.seed(seed)
  op <- options(Seurat.object.assay.version = "v3"); on.exit(options(op), add = TRUE)
  genes <- rownames(counts)
  n_ref <- sum(is_ref); n_query <- sum(!is_ref)
  n_min <- min(n_ref, n_query)
  nfeatures <- .hb_cap(nfeatures, length(genes))
  # the per-batch PCA that weights anchors needs dims < cells - 1
  dims <- .hb_cap(dims, min(n_min - 2, nfeatures - 1))
  prep <- function(m) {
    o <- CreateSeuratObject(counts = m, min.cells = 0, min.features = 0)
    .hb_prepare(NormalizeData(o, verbose = FALSE), nfeatures)
  }
  ref <- prep(counts[, is_ref, drop = FALSE])
  query <- prep(counts[, !is_ref, drop = FALSE])
  anchors <- FindTransferAnchors(reference = ref, query = query, reduction = reduction,
                                 npcs = if (reduction == "pcaproject") dims else NULL,
                                 dims = 1:dims, k.anchor = .hb_cap(k_anchor, n_min - 1),
                                 k.filter = .hb_cap(k_filter, n_min - 1),
                                 k.score = .hb_cap(k_score, n_min - 1), verbose = FALSE)
  a <- anchors@anchors
  k_w <- .hb_cap(k_weight, min(n_query - 1, length(unique(a[, "cell1"])) - 1))
  pred <- TransferData(anchorset = anchors, refdata = setNames(labels, colnames(ref)),
                       dims = 1:dims, k.weight = k_w, verbose = FALSE)
  score_cols <- grep("^prediction\\.score\\.", colnames(pred), value = TRUE)
  score_cols <- setdiff(score_cols, "prediction.score.max")
  list(cells = rownames(pred), predicted = as.character(pred$predicted.id),
       scores = as.matrix(pred[, score_cols, drop = FALSE]), score_names = score_cols,
       seurat = as.character(utils::packageVersion("Seurat")), dims = dims, k_weight = k_w,
       n_anchors = nrow(a))
}
"""


def _counts_for_r(adata):
    """Counts as an R dgCMatrix with positional names G1../C1.. (Seurat-safe)."""
    from .. import rbridge

    X = counts_csr(adata)
    genes = [f"G{i + 1}" for i in range(X.shape[1])]
    cells = [f"C{i + 1}" for i in range(X.shape[0])]
    return rbridge.csr_to_dgcmatrix(X, genes, cells), X


@register(
    name="seurat",
    capabilities=("embed", "correct"),
    language="r",
    requires_r=("Seurat", "SeuratObject"),
    defaults={"nfeatures": 2000, "dims": 30, "k_anchor": 5, "k_filter": 200, "k_score": 30,
              "k_weight": 100, "integration": "auto"},
    citation=CITATION,
    url=URL,
    description="Seurat anchor integration (CCA anchors; IntegrateData / v5 IntegrateLayers)",
)
def seurat(adata, task):
    """Seurat CCA anchor integration: embed (integrated PCA) and correct (integrated values)."""
    from .. import rbridge

    p = task.params
    integration = p.get("integration", "auto")
    if integration not in ("auto", "anchors", "layers"):
        raise MethodInputError(f"params['integration'] must be 'auto', 'anchors' or 'layers', got {integration!r}")
    batches = batch_vector(adata, task.batch_key)
    need_batches(batches, task.batch_key, "seurat")
    smallest = pd.Series(batches).value_counts().min()
    if smallest < 5:
        raise MethodInputError(f"seurat: the smallest batch of obs[{task.batch_key!r}] has {smallest} cells; "
                               "anchor integration needs at least 5 per batch (drop or merge that batch)")
    outputs = tuple(task.outputs) if task.outputs else ("embed",)
    want_embed = "embed" in outputs or "correct" not in outputs
    want_corrected = "correct" in outputs
    rbridge.require_r_packages("Seurat")
    counts, _ = _counts_for_r(adata)
    fn = rbridge.r_function(_R_INTEGRATE, "Seurat integration")
    res = rbridge.r_list_to_dict(fn(
        counts, np.asarray(batches, dtype=object), seed=int(task.seed), n_latent=int(task.n_latent),
        nfeatures=int(p.get("nfeatures", 2000)), dims=int(p.get("dims", 30)),
        k_anchor=int(p.get("k_anchor", 5)), k_filter=int(p.get("k_filter", 200)),
        k_score=int(p.get("k_score", 30)), k_weight=int(p.get("k_weight", 100)),
        want_embed=bool(want_embed), want_corrected=bool(want_corrected), integration=integration,
    ))
    out: dict = {}
    if "embedding" in res:
        out["embedding"] = rbridge.r_matrix_to_numpy(res["embedding"])
    if "corrected" in res:
        # R returns genes x cells; read column-major it is cells x genes already
        out["corrected"] = rbridge.r_matrix_to_numpy(res["corrected"], transpose=True)
    used = {k: rbridge.r_vector_to_numpy(v).tolist()[0] for k, v in res.items()
            if k not in ("embedding", "corrected")}
    out["extras"] = {"r_versions": rbridge.r_package_versions(["Seurat", "SeuratObject"]), "used_params": used}
    return out


@register(
    name="seurat_transfer",
    capabilities=("classify",),
    language="r",
    requires_r=("Seurat", "SeuratObject"),
    uses_labels=True,
    defaults={"nfeatures": 2000, "dims": 30, "k_anchor": 5, "k_filter": 200, "k_score": 30,
              "k_weight": 50, "reduction": "pcaproject"},
    citation=CITATION,
    url=URL,
    description="Seurat label transfer (FindTransferAnchors / TransferData), labelled cells as reference",
)
def seurat_transfer(adata, task):
    """Seurat anchor label transfer: reference = cells with a visible label, query = the rest.

    Labelled cells keep their given label (probability 1); unlabelled cells get Seurat's
    ``predicted.id`` and ``prediction.score.*`` as probabilities.
    """
    from .. import rbridge

    p = task.params
    reduction = p.get("reduction", "pcaproject")
    if reduction not in ("pcaproject", "cca", "lsiproject", "rpca"):
        raise MethodInputError(f"params['reduction'] must be a FindTransferAnchors reduction, got {reduction!r}")
    if task.label_key not in adata.obs:
        raise MethodInputError(f"obs[{task.label_key!r}] (task.label_key) is missing; add the visible labels")
    labels = adata.obs[task.label_key]
    is_ref = labels.notna().to_numpy()
    if is_ref.sum() < 5 or (~is_ref).sum() < 2:
        raise MethodInputError(
            f"seurat_transfer needs >= 5 labelled and >= 2 unlabelled cells in obs[{task.label_key!r}], "
            f"got {int(is_ref.sum())} labelled and {int((~is_ref).sum())} unlabelled")
    classes = np.array(sorted(labels[is_ref].astype(str).unique()))
    if len(classes) < 2:
        raise MethodInputError(f"seurat_transfer needs at least 2 labelled classes, got {list(classes)}")
    # codes L1.. survive Seurat's column naming (make.names) unchanged
    code_of = {c: f"L{i + 1}" for i, c in enumerate(classes)}
    class_of = {v: k for k, v in code_of.items()}
    ref_codes = np.array([code_of[c] for c in labels[is_ref].astype(str)], dtype=object)

    rbridge.require_r_packages("Seurat")
    counts, _ = _counts_for_r(adata)
    fn = rbridge.r_function(_R_TRANSFER, "Seurat label transfer")
    res = rbridge.r_list_to_dict(fn(
        counts, ref_codes, is_ref, seed=int(task.seed), nfeatures=int(p.get("nfeatures", 2000)),
        dims=int(p.get("dims", 30)), k_anchor=int(p.get("k_anchor", 5)),
        k_filter=int(p.get("k_filter", 200)), k_score=int(p.get("k_score", 30)),
        k_weight=int(p.get("k_weight", 50)), reduction=reduction,
    ))
    query_idx = np.flatnonzero(~is_ref)
    cells_back = rbridge.r_vector_to_numpy(res["cells"])
    expect = np.array([f"C{i + 1}" for i in query_idx], dtype=object)
    if not np.array_equal(cells_back, expect):  # Seurat keeps query order; check rather than trust
        order = pd.Index(cells_back).get_indexer(expect)
    else:
        order = np.arange(len(expect))
    pred = rbridge.r_vector_to_numpy(res["predicted"])[order]
    scores = rbridge.r_matrix_to_numpy(res["scores"])[order]
    score_codes = [s.replace("prediction.score.", "") for s in rbridge.r_vector_to_numpy(res["score_names"])]

    probs = np.zeros((adata.n_obs, len(classes)))
    col = {c: j for j, c in enumerate(classes)}
    for j, code in enumerate(score_codes):
        probs[query_idx, col[class_of[code]]] = scores[:, j]
    ref_idx = np.flatnonzero(is_ref)
    probs[ref_idx, [col[c] for c in labels[is_ref].astype(str)]] = 1.0
    out_labels = np.empty(adata.n_obs, dtype=object)
    out_labels[ref_idx] = labels[is_ref].astype(str).to_numpy()
    out_labels[query_idx] = [class_of[c] for c in pred]
    used = {k: rbridge.r_vector_to_numpy(res[k]).tolist()[0] for k in ("seurat", "dims", "k_weight", "n_anchors")}
    return {
        "labels": out_labels,
        "probabilities": pd.DataFrame(probs, index=adata.obs_names.copy(), columns=classes),
        "extras": {"r_versions": rbridge.r_package_versions(["Seurat", "SeuratObject"]), "used_params": used},
    }
