"""Fused CPU path for the NB / ZINB reconstruction term (value and gradient in one pass).

Training spends most of its non-matmul time in the count likelihood. Its value and its
gradients with respect to log mu, log theta and the zero-inflation logits are computed in
the forward pass, so the backward pass is three multiplies, in two steps:

1. every (cell, gene) entry as if its count were 0, with vectorised torch ops (ATen's SIMD
   exp/log; numba without Intel's SVML evaluates exp/log one lane at a time, which made a
   single scalar loop over all entries ~5x slower);
2. a numba loop over the non-zero counts (the CSR slice of the minibatch, ~10-25% of the
   entries) that adds what a positive count changes: x log(mu / (theta + mu)),
   lgamma(x + theta) - lgamma(theta) and the ZINB branch for x > 0. For small integer
   counts lgamma(x + theta) - lgamma(theta) = sum_{k<x} log(theta + k) (one log of a
   product) and its theta-derivative sum_{k<x} 1 / (theta + k) avoid lgamma/digamma.

The constant -lgamma(x + 1) is left out (as in ``distributions.count_nll_training``, whose
math this is and against which it is tested); CUDA tensors and double precision use that
autograd path instead.
"""
from __future__ import annotations

import math
from typing import Optional

import numba
import numpy as np
import torch
import torch.nn.functional as F

from .distributions import SparseCounts

_SMALL_COUNT = 16  # below this, lgamma ratios by products (exact for integer counts)


@numba.njit(fastmath=True, cache=True, inline="always")
def _digamma(y):
    acc = 0.0
    while y < 6.0:
        acc -= 1.0 / y
        y += 1.0
    iy = 1.0 / y
    iy2 = iy * iy
    return acc + math.log(y) - 0.5 * iy - iy2 * (1.0 / 12 - iy2 * (1.0 / 120 - iy2 / 252))


@numba.njit(fastmath=True, cache=True, inline="always")
def _lgamma_ratio(x, th):
    """(lgamma(x + th) - lgamma(th), its derivative in th) for a count x > 0."""
    if x < _SMALL_COUNT and x == math.floor(x):
        prod = 1.0
        inv = 0.0
        k = 0.0
        while k < x:
            prod *= th + k
            inv += 1.0 / (th + k)
            k += 1.0
        return math.log(prod), inv
    return math.lgamma(x + th) - math.lgamma(th), _digamma(x + th) - _digamma(th)


_F1 = np.float32(1.0)


def _lgamma_ratio_table(theta: torch.Tensor):
    """Per-gene (lgamma(x + theta) - lgamma(theta), its theta-derivative) for x = 0.._SMALL_COUNT - 1.

    With one theta per gene these depend on (x, gene) only: 2 x 15 x G logs and reciprocals
    per step instead of a product loop and a log at every non-zero entry.
    """
    th = theta.reshape(-1).double()
    terms = th + torch.arange(_SMALL_COUNT - 1, dtype=torch.float64).unsqueeze(1)  # theta + k
    lg = torch.zeros((_SMALL_COUNT, th.shape[0]), dtype=torch.float64)
    dg = torch.zeros_like(lg)
    torch.cumsum(torch.log(terms), 0, out=lg[1:])
    torch.cumsum(terms.reciprocal_(), 0, out=dg[1:])
    return lg, dg


@numba.njit(fastmath=True, cache=True, nogil=True)
def _nonzero_kernel(rows, cols, vals, k0, k1, log_mu, theta, s, L, thr, nb0, gw, sp_w, pi, zero_inflated,
                    ll, g_lm, g_lt, g_pi, lg_table, dg_table):
    """Add to the x = 0 terms what the non-zero counts k0..k1 (whole rows) change.

    ``lg_table``/``dg_table`` (x, gene): the lgamma ratios for small counts when theta is per
    gene; (1, 1) otherwise.
    """
    per_cell_theta = theta.shape[0] > 1
    use_table = lg_table.shape[0] == _SMALL_COUNT
    for k in range(k0, k1):
        i = rows[k]
        g = cols[k]
        xv = vals[k]
        th = theta[i if per_cell_theta else 0, g]
        t = thr[i, g]  # theta * mu / (theta + mu)
        omr = th / s[i, g]  # theta / (theta + mu)
        if use_table and xv < _SMALL_COUNT and xv == math.floor(xv):
            lg = lg_table[int(xv), g]
            dg = dg_table[int(xv), g]
        else:
            lg, dg = _lgamma_ratio(np.float64(xv), np.float64(th))
        d_ll = xv * (log_mu[i, g] - L[i, g]) + np.float32(lg)
        d_lt = th * np.float32(dg) - xv * omr
        d_lm = xv * omr
        if zero_inflated:
            # x > 0: log-likelihood w - softplus(-pi) (not softplus(w) - ...), d/dw = 1 (not sigmoid(w))
            b = nb0[i, g]
            dgw = _F1 - gw[i, g]
            d_ll += (b - pi[i, g]) - sp_w[i, g]
            d_lt += dgw * (b + t)
            d_lm -= dgw * t
            g_pi[i, g] -= dgw
        ll[i] += d_ll
        g_lm[i, g] += d_lm
        g_lt[i, g] += d_lt


def _zero_count_terms(log_mu, log_theta, pi):
    """Log-likelihood per cell and gradients (log mu, log theta, pi) with every count set to 0.

    log NB(0) = theta (log theta - log(theta + mu)); ZINB(0) = softplus(w) - softplus(-pi) with
    w = log NB(0) - pi. Also returns the intermediates the non-zero pass reuses.
    """
    theta = log_theta.exp()
    # numpy's SIMD exp / log on the (cells, genes) arrays: ~2x / ~3x faster than ATen's here
    # (torch 2.13 CPU wheel, numpy 2.4; one thread); same float32 values within an ulp or two
    mu = torch.from_numpy(np.exp(log_mu.numpy()))
    s = mu + theta
    L = torch.from_numpy(np.log(s.numpy()))
    thr = mu.mul_(theta).div_(s)  # theta * mu / (theta + mu) = -d log NB(0) / d log mu
    nb0 = (log_theta - L).mul_(theta)
    if pi is None:
        return dict(ll=nb0.sum(1), g_lm=thr.neg(), g_lt=nb0 + thr, g_pi=None, theta=theta, s=s, L=L, thr=thr,
                    nb0=nb0, gw=None, sp_w=None)
    w = nb0 - pi
    gw = torch.sigmoid(w)
    sp_w = F.softplus(w)
    ll = (sp_w - F.softplus(-pi)).sum(1)
    g_pi = torch.sigmoid(-pi).sub_(gw)
    g_lt = (nb0 + thr).mul_(gw)
    g_lm = (thr * gw).neg_()
    return dict(ll=ll, g_lm=g_lm, g_lt=g_lt, g_pi=g_pi, theta=theta, s=s, L=L, thr=thr, nb0=nb0, gw=gw,
                sp_w=sp_w)


_POOL: dict = {}


def _row_blocks(rows: np.ndarray, n: int, n_blocks: int):
    """Split the (row-sorted) non-zeros at row boundaries into ``n_blocks`` ranges."""
    cuts = np.searchsorted(rows, np.linspace(0, n, n_blocks + 1).astype(np.int64))
    return list(zip(cuts[:-1], cuts[1:]))


def _run_nonzeros(args_before, args_after, rows, n):
    """Run the non-zero kernel over row blocks on torch's thread count (numba releases the GIL).

    Plain Python threads rather than numba's parallel layer: an OpenMP pool of numba's own
    would spin beside torch's and slow every other op on a small machine. Each row is one
    thread's, so the per-cell sums are the same for any thread count.
    """
    n_threads = max(1, min(torch.get_num_threads(), n // 32))
    blocks = _row_blocks(rows, n, n_threads)
    if n_threads == 1:
        _nonzero_kernel(*args_before, blocks[0][0], blocks[0][1], *args_after)
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = _POOL.get(n_threads)
    if pool is None:
        pool = _POOL[n_threads] = ThreadPoolExecutor(n_threads - 1)
    # the calling thread takes the first block itself instead of idling while the pool works
    futures = [pool.submit(_nonzero_kernel, *args_before, b[0], b[1], *args_after) for b in blocks[1:]]
    _nonzero_kernel(*args_before, blocks[0][0], blocks[0][1], *args_after)
    for f in futures:
        f.result()


def _row_sorted(nz: SparseCounts):
    rows = nz.rows.numpy()
    if len(rows) > 1 and np.any(rows[1:] < rows[:-1]):
        order = np.argsort(rows, kind="stable")
        return rows[order], nz.cols.numpy()[order], nz.values.numpy()[order]
    return rows, nz.cols.numpy(), nz.values.numpy()


class FusedCountNLL(torch.autograd.Function):
    """Per-cell -log NB/ZINB(x) (no lgamma(x + 1)); log_mu (n, G), log_theta (1 or n, G)."""

    @staticmethod
    def forward(ctx, log_mu, log_theta, pi_logits, nz):
        n = log_mu.shape[0]
        zi = pi_logits is not None
        with torch.no_grad():
            t = _zero_count_terms(log_mu.detach(), log_theta.detach(), pi_logits.detach() if zi else None)
        ll = np.zeros(n, dtype=np.float64)
        dummy = np.zeros((1, 1), dtype=np.float32)

        def arr(v):
            return dummy if v is None else v.numpy()

        rows, cols, vals = _row_sorted(nz)
        before = (rows, cols, vals)
        after = (log_mu.detach().numpy(), arr(t["theta"]), arr(t["s"]), arr(t["L"]), arr(t["thr"]), arr(t["nb0"]),
                 arr(t["gw"]), arr(t["sp_w"]), arr(pi_logits.detach() if zi else None), zi,
                 ll, arr(t["g_lm"]), arr(t["g_lt"]), arr(t["g_pi"]))
        if log_theta.shape[0] == 1:
            after = after + tuple(a.numpy() for a in _lgamma_ratio_table(t["theta"]))
        else:
            after = after + (np.zeros((1, 1)), np.zeros((1, 1)))
        _run_nonzeros(before, after, rows, n)
        ctx.zi, ctx.theta_rows = zi, log_theta.shape[0]
        ctx.save_for_backward(t["g_lm"], t["g_lt"], t["g_pi"] if zi else t["g_lm"])
        return -(t["ll"].double() + torch.from_numpy(ll)).float()

    @staticmethod
    def backward(ctx, grad_out):
        # in place: the buffers are this step's own (a second backward through this graph
        # fails autograd's saved-tensor version check instead of using scaled gradients)
        g_lm, g_lt, g_pi = ctx.saved_tensors
        go = -grad_out.unsqueeze(1)  # the gradients above are of +log-likelihood
        if ctx.theta_rows == 1:  # per-gene theta: sum over cells as one matrix-vector product
            g_theta = torch.mm(go.t(), g_lt)
        else:
            g_theta = g_lt.mul_(go)
        return g_lm.mul_(go), g_theta, (g_pi.mul_(go) if ctx.zi else None), None


def fused_available(*tensors) -> bool:
    """The kernel runs on float32 CPU tensors."""
    return all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32) for t in tensors)


def fused_count_nll(likelihood: str, x, log_mu, log_theta, pi_logits=None,
                    nz: Optional[SparseCounts] = None) -> torch.Tensor:
    """Per-cell NB / ZINB negative log-likelihood without sum lgamma(x + 1), fused on CPU.

    ``nz``: the non-zero entries of ``x`` (row-sorted, as the minibatch's CSR slice gives
    them); found from ``x`` when not given.
    """
    if log_theta.dim() == 1:
        log_theta = log_theta.unsqueeze(0)
    if nz is None:
        r, c = x.nonzero(as_tuple=True)
        nz = SparseCounts(r, c, x[r, c])
    pi = pi_logits.contiguous() if likelihood == "zinb" else None
    return FusedCountNLL.apply(log_mu.contiguous(), log_theta.contiguous(), pi, nz)
