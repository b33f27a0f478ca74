"""Graph LISI (Korsunsky et al. 2019, Harmony), scaled as in scIB (Luecken et al. 2022).

Per cell, a Gaussian kernel over its kNN distances is calibrated to a perplexity (bisection on
the kernel precision, like t-SNE); LISI = 1 / sum_c (kernel mass on category c)^2 = the
effective number of categories in the neighbourhood. Vectorised over all cells at once (no JIT),
same algorithm and tolerances as scib-metrics' ``compute_simpson_index``.
"""
from __future__ import annotations

import numpy as np

from ._checks import MetricInputError, as_labels, codes
from .neighbors import NeighborsResult


def _neighbour_probabilities(dist: np.ndarray, valid: np.ndarray, perplexity: float, tol: float = 1e-5,
                             max_tries: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise P = exp(-beta d) / sum with beta bisected so that entropy H(P) = log(perplexity)."""
    n = dist.shape[0]
    logU = np.log(perplexity)
    beta = np.ones(n)
    bmin = np.full(n, -np.inf)
    bmax = np.full(n, np.inf)

    H, P = _hbeta(dist, valid, beta)
    Hdiff = H - logU
    tries = np.zeros(n, dtype=int)
    active = np.abs(Hdiff) >= tol
    while active.any():
        a = np.flatnonzero(active)
        up = Hdiff[a] > 0  # entropy too high: sharpen the kernel
        bmin[a] = np.where(up, beta[a], bmin[a])
        bmax[a] = np.where(up, bmax[a], beta[a])
        beta[a] = np.where(
            up, np.where(np.isinf(bmax[a]), beta[a] * 2, (beta[a] + bmax[a]) / 2),
            np.where(np.isinf(bmin[a]), beta[a] / 2, (beta[a] + bmin[a]) / 2),
        )
        Ha, Pa = _hbeta(dist[a], valid[a], beta[a])
        H[a], P[a] = Ha, Pa
        Hdiff[a] = Ha - logU
        tries[a] += 1
        active = (np.abs(Hdiff) >= tol) & (tries < max_tries)
    return H, P


def _hbeta(dist, valid, b):
    """Kernel entropy H and normalised kernel P for precisions ``b`` (one per row)."""
    P = np.where(valid, np.exp(-dist * b[:, None]), 0.0)
    sumP = P.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        H = np.where(sumP == 0, 0.0, np.log(sumP) + b * (dist * P).sum(1) / sumP)
        P = np.where(sumP[:, None] == 0, 0.0, P / sumP[:, None])
    return H, P


def lisi_per_cell(nn: NeighborsResult, labels, *, perplexity: float | None = None) -> np.ndarray:
    """LISI of ``labels`` for every cell on the graph ``nn`` (self is masked out of the kernel).

    ``perplexity`` defaults to floor(columns / 3) with columns counting the cell itself (scIB's
    choice; 30 for a 90-column graph). Cells whose kernel is degenerate get -1, as in scib-metrics.
    """
    code, cats = codes(as_labels(labels, nn.n_cells))
    if perplexity is None:
        perplexity = np.floor(nn.indices.shape[1] / 3)
    valid = nn.indices != np.arange(nn.n_cells)[:, None]
    H, P = _neighbour_probabilities(nn.distances, valid, perplexity)
    n, m = nn.indices.shape
    mass = np.zeros((n, len(cats)))
    np.add.at(mass, (np.repeat(np.arange(n), m), code[nn.indices].ravel()), P.ravel())
    simpson = np.where(H == 0, -1.0, (mass ** 2).sum(1))
    return 1.0 / simpson


def ilisi_knn(nn: NeighborsResult, batches, *, perplexity: float | None = None, scale: bool = True) -> float:
    """Integration LISI: median batch LISI, scaled to [0, 1] by (x - 1) / (n_batches - 1); higher = mixed."""
    lisi = np.nanmedian(lisi_per_cell(nn, batches, perplexity=perplexity))
    n_b = len(np.unique(as_labels(batches).astype(str)))
    if scale:
        if n_b < 2:
            raise MetricInputError("iLISI needs at least two batches in `batches`")
        lisi = (lisi - 1) / (n_b - 1)
    return float(lisi)


def clisi_knn(nn: NeighborsResult, labels, *, perplexity: float | None = None, scale: bool = True) -> float:
    """Cell-type LISI: median label LISI, scaled by (C - x) / (C - 1); higher = types kept apart."""
    lisi = np.nanmedian(lisi_per_cell(nn, labels, perplexity=perplexity))
    n_c = len(np.unique(as_labels(labels).astype(str)))
    if scale:
        if n_c < 2:
            raise MetricInputError("cLISI needs at least two labels in `labels`")
        lisi = (n_c - lisi) / (n_c - 1)
    return float(lisi)
