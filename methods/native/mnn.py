"""Mutual-nearest-neighbour batch correction: ``mnnCorrect`` and ``fastMNN``.

A Python re-implementation of batchelor 1.14.1 (Bioconductor 3.16), following
Haghverdi et al. 2018 ("Batch effects in single-cell RNA-sequencing data are corrected by
matching mutual nearest neighbors", Nat. Biotechnol. 36:421) and A. Lun's "Further MNN
algorithm development" (the fastMNN variant). The scANVI paper (Xu et al., Methods,
"Algorithms for benchmarking") runs mnnCorrect with default parameters as a harmonization
baseline.

Conventions: every matrix here has **cells in rows, genes (or PCs) in columns** (the
transpose of batchelor's genes x cells); every index is 0-based. With the same inputs the
outputs reproduce batchelor's to ~1e-12 (checked in tests/test_mnn.py against
``shared/reference_r``).

Algorithm, in one paragraph per function:

* :func:`cosine_normalize` divides each cell by its L2 norm (batchelor ``cosineNorm``) so that
  squared Euclidean distances become ``2 - 2 cos``; ``sigma = 0.1`` is then 10% of the space's
  radius.
* :func:`find_mutual_nn`: cell ``a`` of batch 1 and cell ``b`` of batch 2 are a pair when each
  is among the other's ``k`` nearest neighbours in the other batch.
* :func:`mnn_correct` (paper Methods, "Computing correction vectors"): each MNN pair gives the
  vector ``x_a - x_b``; vectors are averaged per batch-2 cell, then smoothed onto every batch-2
  cell with a Gaussian kernel ``exp(-d^2 / sigma)`` whose contributions are divided by the local
  density of MNN cells; optionally the vector is rescaled so that quantiles along it match
  between batches (``var.adj``, against "kissing" clouds). Batches are merged one by one
  (batch 1 + 2, then + 3, ...), each merged set becoming the new reference.
* :func:`fast_mnn`: the same idea in the space of a joint PCA (:func:`multi_batch_pca`),
  with the average correction vector's component removed from both batches (orthogonalization)
  and tricube-weighted smoothing over the ``k`` nearest MNN cells.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
from scipy.spatial.distance import cdist

__all__ = [
    "cosine_normalize",
    "find_mutual_nn",
    "knn_query",
    "smooth_gaussian_kernel",
    "adjust_shift_variance",
    "mnn_correct",
    "MNNCorrectResult",
    "multi_batch_pca",
    "MultiBatchPCA",
    "fast_mnn",
    "FastMNNResult",
]

#: matrix entries per block of a cross-batch distance computation (x 8 bytes: ~160 MB)
_BLOCK_ENTRIES = 20_000_000


def _block_rows(n_other: int) -> int:
    """Rows per block so that a (rows x n_other) float64 block stays within the budget."""
    return max(1, _BLOCK_ENTRIES // max(1, n_other))


# --------------------------------------------------------------------------------------
# small building blocks
# --------------------------------------------------------------------------------------
def cosine_normalize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Divide each cell (row) by its L2 norm; return ``(normalized, l2norm)``.

    batchelor ``cosineNorm``: norms below 1e-8 are raised to 1e-8 so all-zero cells stay
    zero instead of becoming NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    l2 = np.sqrt(np.einsum("ij,ij->i", x, x))
    l2 = np.maximum(l2, 1e-8)
    return x / l2[:, None], l2


def knn_query(ref: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each ``query`` row among ``ref`` rows (Euclidean).

    Returns ``(indices, distances)``, both ``(n_query, k)``, nearest first; ties are broken by
    the lower reference index. Distances are computed directly (``scipy cdist``), not via the
    ``|a|^2 + |b|^2 - 2ab`` expansion, so near-ties are ordered as an exact search orders them
    (batchelor uses the exact KMKNN search).
    """
    ref = np.asarray(ref, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    k = int(k)
    if k < 1 or k > ref.shape[0]:
        raise ValueError(f"k must be in 1..{ref.shape[0]} (number of reference cells), got {k}")
    idx = np.empty((query.shape[0], k), dtype=np.int64)
    dist = np.empty((query.shape[0], k), dtype=np.float64)
    block = _block_rows(ref.shape[0])
    for start in range(0, query.shape[0], block):
        d2 = cdist(query[start:start + block], ref, "sqeuclidean")
        if k < ref.shape[0]:
            part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(ref.shape[0]), d2.shape).copy()
        pd = np.take_along_axis(d2, part, axis=1)
        # sort by (distance, index): lexsort's last key is the primary one
        order = np.lexsort((part, pd), axis=1)
        idx[start:start + block] = np.take_along_axis(part, order, axis=1)
        dist[start:start + block] = np.sqrt(np.take_along_axis(pd, order, axis=1))
    return idx, dist


def find_mutual_nn(data1: np.ndarray, data2: np.ndarray, k1: int, k2: Optional[int] = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbour pairs between two batches (batchelor ``findMutualNN``).

    ``k2`` neighbours of each ``data1`` cell are searched in ``data2`` and ``k1`` neighbours of
    each ``data2`` cell in ``data1``; ``(a, b)`` is a pair when each is in the other's list.
    Returns ``(first, second)``: 0-based rows of ``data1`` and ``data2``, ordered by ``first``
    and then by ``b``'s rank among ``a``'s neighbours (batchelor's order).
    """
    k2 = k1 if k2 is None else k2
    k1 = min(int(k1), data1.shape[0])
    k2 = min(int(k2), data2.shape[0])
    w21, _ = knn_query(data2, data1, k2)  # for each cell of batch 1, its neighbours in batch 2
    w12, _ = knn_query(data1, data2, k1)  # for each cell of batch 2, its neighbours in batch 1
    n1, n2 = data1.shape[0], data2.shape[0]
    # (a, b) is mutual when a is also in b's list: look the candidate pairs up among b's lists,
    # encoded as integers a * n2 + b
    back = np.sort(w12.ravel().astype(np.int64) * n2 + np.repeat(np.arange(n2), k1))
    a = np.repeat(np.arange(n1), k2)
    b = w21.ravel()
    keep = np.isin(a.astype(np.int64) * n2 + b, back, assume_unique=False)
    return a[keep], b[keep]


def _logsumexp_sequential(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(sum(exp(values))) along ``axis``, max-shifted (batchelor's repeated logspace_add)."""
    m = np.max(values, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(values - m), axis=axis))


def smooth_gaussian_kernel(vect: np.ndarray, index: np.ndarray, data: np.ndarray, sigma: float
                           ) -> np.ndarray:
    """Per-cell correction vectors, Gaussian-smoothed from the MNN pair vectors.

    ``vect[p]`` is the correction of pair ``p`` whose batch-2 cell is ``index[p]``; ``data``
    holds the batch-2 cells (rows) in the space where distances are measured. Pair vectors
    are first averaged per MNN cell ``m``; each cell ``c`` then gets
    ``sum_m w(m, c) v_m / sum_m w(m, c)`` with ``w(m, c) = exp(-|x_m - x_c|^2 / sigma) /
    sum_{m'} exp(-|x_m - x_m'|^2 / sigma)``: the kernel weight divided by the density of MNN
    cells around ``m``, so dense regions do not dominate (Haghverdi et al. 2018, Methods).
    Note batchelor divides by ``sigma``, not ``sigma^2``.
    """
    vect = np.asarray(vect, dtype=np.float64)
    index = np.asarray(index, dtype=np.int64)
    mnn_cells, inverse, counts = np.unique(index, return_inverse=True, return_counts=True)
    averages = np.zeros((mnn_cells.size, vect.shape[1]))
    np.add.at(averages, inverse, vect)
    averages /= counts[:, None]

    n_cells = data.shape[0]
    numerator = np.zeros((n_cells, vect.shape[1]))
    total = np.zeros(n_cells)
    step = _block_rows(n_cells)
    for start in range(0, mnn_cells.size, step):
        block = mnn_cells[start:start + step]
        logw = -cdist(data[block], data, "sqeuclidean") / sigma  # (block, n_cells)
        density = _logsumexp_sequential(logw[:, mnn_cells], axis=1)
        w = np.exp(logw - density[:, None])
        total += w.sum(axis=0)
        numerator += w.T @ averages[start:start + step]
    return numerator / total[:, None]


def adjust_shift_variance(data1: np.ndarray, data2: np.ndarray, correction: np.ndarray,
                          sigma: float) -> np.ndarray:
    """Scale each batch-2 correction vector so batch 2's spread along it matches batch 1's.

    For batch-2 cell ``c`` with unit correction direction ``g``: its kernel-weighted quantile
    ``q`` among batch-2 cells projected on ``g`` (weights ``exp(-d_line^2 / sigma)``, ``d_line``
    = distance to the line through ``c`` along ``g``) is matched to the same weighted quantile
    of batch 1's projections; the vector is stretched to reach it, never shrunk
    (``scale = max(1, (q_ref - proj_c) / |v|)``). This is batchelor's ``var.adj`` against
    "kissing" point clouds (``mnnCorrect`` documentation, "Further options").
    Returns the rescaled correction (``n2 x genes``).
    """
    data1 = np.asarray(data1, dtype=np.float64)
    data2 = np.asarray(data2, dtype=np.float64)
    correction = np.asarray(correction, dtype=np.float64)
    l2 = np.sqrt(np.einsum("ij,ij->i", correction, correction))
    safe = np.where(l2 > 0, l2, 1.0)
    grad = correction / safe[:, None]
    sq1 = np.einsum("ij,ij->i", data1, data1)
    sq2 = np.einsum("ij,ij->i", data2, data2)
    n2 = data2.shape[0]
    scaling = np.empty(n2)
    step = _block_rows(4 * (data1.shape[0] + n2))  # ~8 work arrays of (n, block)
    for start in range(0, n2, step):
        rows = np.arange(start, min(start + step, n2))
        g = grad[rows]
        cur = data2[rows]
        cur_proj = np.einsum("ij,ij->i", g, cur)
        # projections of every cell on every direction of this block: (n, block)
        proj2 = data2 @ g.T
        proj1 = data1 @ g.T
        # squared distance to the line through `cur` along g = |x - cur|^2 - ((x - cur).g)^2
        d2_same = sq2[:, None] + sq2[rows][None, :] - 2.0 * (data2 @ cur.T)
        d2_same = np.maximum(d2_same - (proj2 - cur_proj[None, :]) ** 2, 0.0)
        d2_other = sq1[:, None] + sq2[rows][None, :] - 2.0 * (data1 @ cur.T)
        d2_other = np.maximum(d2_other - (proj1 - cur_proj[None, :]) ** 2, 0.0)
        logp_same = -d2_same / sigma
        logp_same[rows, np.arange(rows.size)] = 0.0  # the cell itself always has weight 1
        below = proj2 <= cur_proj[None, :]
        below[rows, np.arange(rows.size)] = True
        log_total2 = _logsumexp_sequential(logp_same, axis=0)
        log_below2 = _logsumexp_sequential(np.where(below, logp_same, -np.inf), axis=0)
        log_prob2 = log_below2 - log_total2  # cell's weighted quantile in its own batch

        logp_other = -d2_other / sigma
        log_total1 = _logsumexp_sequential(logp_other, axis=0)
        for j in range(rows.size):
            # batch 1 sorted by (projection, weight), as std::sort on pairs does
            order = np.lexsort((logp_other[:, j], proj1[:, j]))
            cum = np.logaddexp.accumulate(logp_other[order, j])
            hit = np.flatnonzero(cum >= log_prob2[j] + log_total1[j])
            ref_quan = proj1[order[hit[0]] if hit.size else order[-1], j]
            scaling[rows[j]] = (ref_quan - cur_proj[j]) / safe[rows[j]]
    scaling = np.where(l2 > 0, np.maximum(scaling, 1.0), 1.0)
    return correction * scaling[:, None]


# --------------------------------------------------------------------------------------
# mnnCorrect
# --------------------------------------------------------------------------------------
@dataclass
class MNNCorrectResult:
    """Output of :func:`mnn_correct`.

    ``corrected``: cells x genes, batches stacked in input order (cosine-normalised space when
    ``cos_norm_out``). ``batch``: batch index (0-based) of each row. ``pairs``: one
    ``(left, right)`` pair of 0-based row arrays (into ``corrected``) per merge step.
    """

    corrected: np.ndarray
    batch: np.ndarray
    pairs: list = field(default_factory=list)


def _check_batches(batches: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    if len(batches) < 2:
        raise ValueError(f"{what}: at least two batches are needed, got {len(batches)}")
    out = [np.asarray(b.toarray() if hasattr(b, "toarray") else b, dtype=np.float64) for b in batches]
    n_genes = {b.shape[1] for b in out}
    if any(b.ndim != 2 for b in out) or len(n_genes) != 1:
        raise ValueError(f"{what}: every batch must be a 2-d cells x genes matrix with the same genes; "
                         f"got shapes {[b.shape for b in out]}")
    if any(b.shape[0] == 0 for b in out):
        raise ValueError(f"{what}: a batch has no cells; drop empty batches first")
    if any(not np.all(np.isfinite(b)) for b in out):
        raise ValueError(f"{what}: input contains NaN or infinite values; use finite log-expression")
    return out


def mnn_correct(batches: Sequence[np.ndarray], k: int = 20, sigma: float = 0.1,
                cos_norm_in: bool = True, cos_norm_out: bool = True, var_adj: bool = True
                ) -> MNNCorrectResult:
    """Classic MNN correction of log-expression (batchelor ``mnnCorrect``, ``svd.dim = 0``).

    ``batches``: list of cells x genes log-expression matrices (same genes, same order).
    Batches are merged in the given order: the first is the reference, each later batch is
    corrected onto everything merged before it (Haghverdi et al. 2018, "sequential merge").
    MNN pairs and kernel distances use the cosine-normalised data when ``cos_norm_in``;
    correction vectors are computed and applied on cosine-normalised data when
    ``cos_norm_out`` (else on the input scale).
    """
    raw = _check_batches(batches, "mnn_correct")
    if k < 1:
        raise ValueError(f"mnn_correct: k must be >= 1, got {k}")
    if sigma <= 0:
        raise ValueError(f"mnn_correct: sigma must be > 0, got {sigma}")
    ins, outs = [], []
    for b in raw:
        normed, l2 = cosine_normalize(b)
        ins.append(normed if cos_norm_in else b)
        # the output uses the norm of the input-space genes (here the same genes)
        outs.append(b / l2[:, None] if cos_norm_out else b)
    same = cos_norm_in == cos_norm_out

    left_in, left_out = ins[0], outs[0]
    pairs = []
    for right_in, right_out in zip(ins[1:], outs[1:]):
        s1, s2 = find_mutual_nn(left_in, right_in, k1=k, k2=k)
        if s1.size == 0:
            raise ValueError("mnn_correct: no mutual nearest neighbours between batches; "
                             "increase k or check that the batches share cell types")
        pairs.append((s1, s2 + left_in.shape[0]))
        corr_in = smooth_gaussian_kernel(left_in[s1] - right_in[s2], s2, right_in, sigma)
        if not same:
            # kernel distances stay in the input space so that they are comparable to sigma
            corr_out = smooth_gaussian_kernel(left_out[s1] - right_out[s2], s2, right_in, sigma)
        if var_adj:
            corr_in = adjust_shift_variance(left_in, right_in, corr_in, sigma)
            if not same:
                corr_out = adjust_shift_variance(left_out, right_out, corr_out, sigma)
        right_in = right_in + corr_in
        right_out = right_out + corr_out if not same else right_in
        left_in = np.vstack([left_in, right_in])
        left_out = np.vstack([left_out, right_out]) if not same else left_in
    batch = np.concatenate([np.full(b.shape[0], i) for i, b in enumerate(raw)])
    return MNNCorrectResult(corrected=left_out, batch=batch, pairs=pairs)


# --------------------------------------------------------------------------------------
# fastMNN
# --------------------------------------------------------------------------------------
@dataclass
class MultiBatchPCA:
    """Output of :func:`multi_batch_pca`: per-batch PCs, gene loadings and the centre."""

    pcs: list
    rotation: np.ndarray  # genes x d
    centers: np.ndarray  # genes


def _svd_flip_columns(u: np.ndarray) -> np.ndarray:
    """Deterministic signs: the largest-|loading| entry of each column is positive."""
    signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])])
    signs[signs == 0] = 1.0
    return u * signs


def multi_batch_pca(batches: Sequence[np.ndarray], d: int = 50) -> MultiBatchPCA:
    """PCA in which every batch counts equally (batchelor ``multiBatchPCA``, exact SVD).

    Data are centred on the mean of the per-batch means (not the pooled mean, which would
    make compositional assumptions); each batch's cells are scaled by ``1/sqrt(n_b)`` for the
    SVD so large batches do not dominate the axes; the *unscaled* centred cells are then
    projected on the loadings. PC signs follow "largest loading positive" (R's depend on
    LAPACK; compare up to sign).
    """
    mats = _check_batches(batches, "multi_batch_pca")
    centers = np.mean([m.mean(axis=0) for m in mats], axis=0)
    centered = [m - centers for m in mats]
    scaled = np.vstack([c / np.sqrt(c.shape[0]) for c in centered])
    d = int(min(d, *scaled.shape))
    # scaled is cells x genes; the gene loadings are its right singular vectors
    _, _, vt = np.linalg.svd(scaled, full_matrices=False)
    rotation = _svd_flip_columns(vt[:d].T)
    return MultiBatchPCA(pcs=[c @ rotation for c in centered], rotation=rotation, centers=centers)


@dataclass
class FastMNNResult:
    """Output of :func:`fast_mnn`.

    ``corrected``: cells x d corrected PCs (batches stacked in input order); ``batch``: batch
    index per row; ``rotation``: genes x d loadings (``corrected @ rotation.T`` is batchelor's
    "reconstructed" matrix, centre not added back); ``pairs``: per merge step ``(left, right)``
    0-based rows of ``corrected``; ``lost_var``: merges x batches, variance fraction removed by
    orthogonalization; ``batch_size``: per merge, relative magnitude of the batch vector;
    ``skipped``: per merge, whether correction was skipped (``min_batch_skip``).
    """

    corrected: np.ndarray
    batch: np.ndarray
    rotation: Optional[np.ndarray]
    centers: Optional[np.ndarray]
    pairs: list
    lost_var: np.ndarray
    batch_size: np.ndarray
    skipped: np.ndarray
    batch_vectors: list


def _average_correction(ref: np.ndarray, mnn1: np.ndarray, cur: np.ndarray, mnn2: np.ndarray):
    """Pair vectors ``ref[a] - cur[b]`` averaged per distinct batch-2 cell (sorted)."""
    second, inverse, counts = np.unique(mnn2, return_inverse=True, return_counts=True)
    averaged = np.zeros((second.size, ref.shape[1]))
    np.add.at(averaged, inverse, ref[mnn1] - cur[mnn2])
    return averaged / counts[:, None], second


def _batch_magnitude(averaged: np.ndarray, overall: np.ndarray) -> float:
    """|mean vector| / RMS |per-cell vector|: 1 for consistent directions, ~0 for random."""
    ave_l2sq = float(np.sum(np.mean(averaged ** 2, axis=0)))
    return 0.0 if ave_l2sq == 0 else float(np.sqrt(np.sum(overall ** 2) / ave_l2sq))


def _center_along(mat: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Remove the spread along ``vec``: every cell is moved to the mean position along it."""
    unit = vec / np.sqrt(np.sum(vec ** 2))
    loc = mat @ unit
    return mat + np.outer(loc.mean() - loc, unit)


def _total_var(mat: np.ndarray) -> float:
    """Sum of per-dimension variances (n-1 denominator)."""
    return float(np.sum(np.var(mat, axis=0, ddof=1))) if mat.shape[0] > 1 else 0.0


def _tricube_correction(cur: np.ndarray, averaged: np.ndarray, in_mnn: np.ndarray, k: int,
                        ndist: float) -> np.ndarray:
    """Correction for every cell: tricube-weighted mean over its ``k`` nearest MNN cells.

    Bandwidth = ``ndist`` x the distance to the median neighbour (column ``ceil(k/2)``).
    """
    safe_k = min(k, in_mnn.size)
    idx, dist = knn_query(cur[in_mnn], cur, safe_k)
    bandwidth = np.maximum(dist[:, int(np.ceil(safe_k / 2)) - 1] * ndist, 1e-8)
    rel = np.minimum(dist / bandwidth[:, None], 1.0)
    tricube = (1 - rel ** 3) ** 3
    weight = tricube / tricube.sum(axis=1, keepdims=True)
    return cur + np.einsum("nk,nkd->nd", weight, averaged[idx])


def fast_mnn(batches: Sequence[np.ndarray], k: int = 20, d: int = 50, ndist: float = 3.0,
             cos_norm: bool = True, min_batch_skip: float = 0.0, pc_input: bool = False
             ) -> FastMNNResult:
    """MNN correction in PCA space (batchelor ``fastMNN`` with ``BSPARAM = ExactParam()``).

    Steps per merge (reference = everything merged so far, target = next batch):
    (1) remove from each side its spread along the batch vectors of earlier merges of the
    other side; (2) MNN pairs in PC space; (3) average correction vector over MNN cells;
    (4) unless its relative magnitude is below ``min_batch_skip``, centre both sides along
    it (orthogonalization; ``lost_var`` records the variance removed), recompute the pair
    vectors and move every target cell by the tricube-weighted mean vector of its ``k``
    nearest MNN cells.
    ``batches``: cells x genes log-expression (or cells x PCs from one :func:`multi_batch_pca`
    when ``pc_input``).
    """
    mats = _check_batches(batches, "fast_mnn")
    rotation = centers = None
    if pc_input:
        pcs = mats
    else:
        if cos_norm:
            mats = [cosine_normalize(m)[0] for m in mats]
        pca = multi_batch_pca(mats, d=d)
        pcs, rotation, centers = pca.pcs, pca.rotation, pca.centers

    n_batches = len(pcs)
    sizes = [p.shape[0] for p in pcs]
    origin = [np.full(s, i) for i, s in enumerate(sizes)]
    left, left_origin, left_index, left_vecs = pcs[0], origin[0], [0], []
    pairs, batch_vectors = [], []
    var_kept = np.ones((n_batches - 1, n_batches))
    batch_size = np.full(n_batches - 1, np.nan)
    skipped = np.zeros(n_batches - 1, dtype=bool)
    for step, right in enumerate(pcs[1:]):
        r = step + 1
        left_old = [_total_var(left[left_origin == i]) for i in left_index]
        right_old = _total_var(right)
        # the new batch has never been merged, so only the reference carries batch vectors
        for vec in left_vecs:
            right = _center_along(right, vec)
        s1, s2 = find_mutual_nn(left, right, k1=k, k2=k)
        if s1.size == 0:
            raise ValueError("fast_mnn: no mutual nearest neighbours between batches; "
                             "increase k or check that the batches share cell types")
        averaged, _ = _average_correction(left, s1, right, s2)
        overall = averaged.mean(axis=0)
        batch_size[step] = _batch_magnitude(averaged, overall)
        if batch_size[step] < min_batch_skip:
            skipped[step] = True
        else:
            left = _center_along(left, overall)
            right = _center_along(right, overall)
        # variance kept after orthogonalization, before the target is moved (batchelor's lost.var)
        for j, i in enumerate(left_index):
            var_kept[step, i] = _total_var(left[left_origin == i]) / left_old[j] if left_old[j] else 1.0
        var_kept[step, r] = _total_var(right) / right_old if right_old else 1.0
        if not skipped[step]:
            re_avg, second = _average_correction(left, s1, right, s2)
            right = _tricube_correction(right, re_avg, second, k, ndist)
        pairs.append((s1, s2 + left.shape[0]))
        batch_vectors.append(overall)
        left = np.vstack([left, right])
        left_origin = np.concatenate([left_origin, origin[r]])
        left_index = left_index + [r]
        left_vecs = left_vecs + [overall]
    return FastMNNResult(corrected=left, batch=left_origin, rotation=rotation, centers=centers,
                         pairs=pairs, lost_var=1.0 - var_kept, batch_size=batch_size,
                         skipped=skipped, batch_vectors=batch_vectors)
