"""MNN batch correction: ``mnn`` (batchelor ``mnnCorrect``) and ``fastmnn`` (``fastMNN``).

The scANVI paper benchmarks MNN (Haghverdi et al. 2018) among the harmonization methods
(Methods, "Algorithms for benchmarking": mnnCorrect, default parameters). batchelor is not
packaged for our R, so by default these run our faithful Python port (:mod:`methods.native.mnn`,
which reproduces batchelor 1.14.1's outputs to ~1e-13); when the R package batchelor is installed, ``backend="auto"`` uses it instead.
``extras["backend"]`` and ``extras["backend_version"]`` say which one ran.

* ``mnn``: ``correct`` = mnnCorrect's corrected expression (cosine-normalised space, batchelor's
  default ``cos.norm.out=TRUE``), ``embed`` = PCA (``n_latent`` components) of it.
* ``fastmnn``: ``embed`` = fastMNN's corrected PCs (``d`` components, exact SVD).

Input: log-normalised expression, log1p(counts per 10k) of ``adata.X`` over all genes given
(select genes upstream: mnnCorrect is dense and quadratic in cells). Batches are merged in order
of first appearance in ``obs[batch_key]`` (batchelor's default progressive merge), unless
``params["merge_order"]`` lists the batch names. No labels are used.
"""
from __future__ import annotations

import numpy as np

from ..base import MethodInputError
from ..rbridge import choose_backend
from ..registry import register
from ._peers_common import batch_vector, counts_csr, log_normalize, need_batches, pca

CITATION = ("Haghverdi L, Lun ATL, Morgan MD, Marioni JC. Batch effects in single-cell RNA-sequencing data "
            "are corrected by matching mutual nearest neighbors. Nat Biotechnol 2018")
URL = "https://bioconductor.org/packages/batchelor/"
NATIVE_VERSION = "harmonization-bench native port of batchelor 1.14.1"

_R_MNN = r"""
function(x, batch, levels, k, sigma, cos_norm_in, cos_norm_out, var_adj) {
  suppressPackageStartupMessages(library(batchelor))
  x <- as.matrix(x)
  mats <- lapply(levels, function(b) x[, batch == b, drop = FALSE])
  out <- do.call(batchelor::mnnCorrect, c(mats, list(k = k, sigma = sigma, cos.norm.in = cos_norm_in,
                 cos.norm.out = cos_norm_out, var.adj = var_adj)))
  corr <- as.matrix(SummarizedExperiment::assay(out, "corrected"))
  storage.mode(corr) <- "double"
  list(corrected = corr, version = as.character(utils::packageVersion("batchelor")))
}
"""

_R_FASTMNN = r"""
function(x, batch, levels, k, d, ndist, cos_norm) {
  suppressPackageStartupMessages(library(batchelor))
  x <- as.matrix(x)
  mats <- lapply(levels, function(b) x[, batch == b, drop = FALSE])
  out <- do.call(batchelor::fastMNN, c(mats, list(k = k, d = d, ndist = ndist, cos.norm = cos_norm,
                 BSPARAM = BiocSingular::ExactParam())))
  pcs <- as.matrix(SingleCellExperiment::reducedDim(out, "corrected"))
  storage.mode(pcs) <- "double"
  list(corrected = pcs, version = as.character(utils::packageVersion("batchelor")))
}
"""


def _batches_in_order(adata, task) -> tuple[np.ndarray, list]:
    """Batch label per cell and the merge order (first appearance, or params['merge_order'])."""
    batches = batch_vector(adata, task.batch_key)
    need_batches(batches, task.batch_key, "mnn")
    order = task.params.get("merge_order")
    levels = list(dict.fromkeys(batches)) if not order else [str(b) for b in order]
    if sorted(levels) != sorted(set(batches)):
        raise MethodInputError(f"params['merge_order'] {levels} must list each batch of obs[{task.batch_key!r}] once: "
                               f"{sorted(set(batches))}")
    return batches, levels


def _split(x: np.ndarray, batches: np.ndarray, levels: list) -> tuple[list, np.ndarray]:
    """Per-batch blocks in merge order, and the permutation that puts stacked rows back in obs order."""
    idx = [np.flatnonzero(batches == b) for b in levels]
    stacked = np.concatenate(idx)
    back = np.empty_like(stacked)
    back[stacked] = np.arange(stacked.size)
    return [x[i] for i in idx], back


def _r_run(source: str, name: str, x: np.ndarray, batches: np.ndarray, levels: list, **kwargs):
    from .. import rbridge

    rbridge.require_r_packages("batchelor")
    fn = rbridge.r_function(source, name)
    res = rbridge.r_list_to_dict(fn(rbridge.numpy_to_r_matrix(np.ascontiguousarray(x.T)),
                                    np.asarray(batches, dtype=object), np.asarray(levels, dtype=object), **kwargs))
    return res, str(rbridge.r_vector_to_numpy(res["version"])[0])


@register(
    name="mnn",
    capabilities=("embed", "correct"),
    defaults={"k": 20, "sigma": 0.1, "cos_norm_in": True, "cos_norm_out": True, "var_adj": True,
              "backend": "auto", "merge_order": None},
    citation=CITATION,
    url=URL,
    version=NATIVE_VERSION + " (R batchelor when installed)",
    description="MNN correction (batchelor mnnCorrect; native Python port, R when installed); embed = PCA",
)
def mnn(adata, task):
    """mnnCorrect on log-normalised expression; embed = PCA of the corrected values."""
    p = task.params
    batches, levels = _batches_in_order(adata, task)
    x = log_normalize(counts_csr(adata)).toarray()
    backend = choose_backend(p.get("backend", "auto"), "batchelor")
    kwargs = dict(k=int(p.get("k", 20)), sigma=float(p.get("sigma", 0.1)),
                  cos_norm_in=bool(p.get("cos_norm_in", True)), cos_norm_out=bool(p.get("cos_norm_out", True)),
                  var_adj=bool(p.get("var_adj", True)))
    if backend == "r":
        res, version = _r_run(_R_MNN, "batchelor::mnnCorrect", x, batches, levels, **kwargs)
        from .. import rbridge

        stacked = rbridge.r_matrix_to_numpy(res["corrected"], transpose=True)
        n_pairs = None
    else:
        from ..native.mnn import mnn_correct

        blocks, _ = _split(x, batches, levels)
        out = mnn_correct(blocks, **kwargs)
        stacked, version = out.corrected, NATIVE_VERSION
        n_pairs = [int(len(left)) for left, _ in out.pairs]
    _, back = _split(x, batches, levels)
    corrected = np.ascontiguousarray(stacked[back])
    result = {"corrected": corrected,
              "extras": {"backend": backend, "backend_version": version, "merge_order": levels,
                         "n_mnn_pairs": n_pairs}}
    if "embed" in (task.outputs or ("embed",)):
        result["embedding"] = pca(corrected, task.n_latent, seed=task.seed)
    return result


@register(
    name="fastmnn",
    capabilities=("embed",),
    defaults={"k": 20, "d": 50, "ndist": 3.0, "cos_norm": True, "backend": "auto", "merge_order": None},
    citation=CITATION,
    url=URL,
    version=NATIVE_VERSION + " (R batchelor when installed)",
    description="fastMNN: MNN correction in a joint PCA (native Python port of batchelor, R when installed)",
)
def fastmnn(adata, task):
    """fastMNN on log-normalised expression: embed = the corrected PCs (exact SVD)."""
    p = task.params
    batches, levels = _batches_in_order(adata, task)
    x = log_normalize(counts_csr(adata)).toarray()
    d = int(min(int(p.get("d", 50)), x.shape[0] - 1, x.shape[1]))
    if d < 1:
        raise MethodInputError(f"fastmnn needs at least 2 cells and 1 gene, got shape {x.shape}")
    backend = choose_backend(p.get("backend", "auto"), "batchelor")
    k, ndist, cos_norm = int(p.get("k", 20)), float(p.get("ndist", 3.0)), bool(p.get("cos_norm", True))
    extras = {"backend": backend, "merge_order": levels, "d": d}
    if backend == "r":
        from .. import rbridge

        res, version = _r_run(_R_FASTMNN, "batchelor::fastMNN", x, batches, levels, k=k, d=d, ndist=ndist,
                              cos_norm=cos_norm)
        stacked = rbridge.r_matrix_to_numpy(res["corrected"])
    else:
        from ..native.mnn import fast_mnn

        blocks, _ = _split(x, batches, levels)
        out = fast_mnn(blocks, k=k, d=d, ndist=ndist, cos_norm=cos_norm)
        stacked, version = out.corrected, NATIVE_VERSION
        extras.update(n_mnn_pairs=[int(len(left)) for left, _ in out.pairs],
                      lost_var=out.lost_var.tolist(), batch_size=out.batch_size.tolist())
    extras["backend_version"] = version
    _, back = _split(x, batches, levels)
    return {"embedding": np.ascontiguousarray(stacked[back]), "extras": extras}
