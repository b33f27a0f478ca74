"""Fused CPU kernel for the NB / ZINB reconstruction term (value and gradient in one pass).

Training spends most of its non-matmul time in the count likelihood. On CPU this kernel
visits each (cell, gene) entry of the dense minibatch once and writes the per-cell
negative log-likelihood (without the constant lgamma(x + 1)) and the gradients with respect
to log mu, log theta and the zero-inflation logits, so the backward pass is three multiplies.
The terms that vanish at x = 0 are evaluated only at non-zero counts; for small integer
counts lgamma(x + theta) - lgamma(theta) = sum_{k<x} log(theta + k) (one log of a product)
and its theta-derivative sum_{k<x} 1 / (theta + k) avoid lgamma/digamma altogether.

The math is that of ``distributions.count_nll_training`` (tested against it); CUDA tensors
and double precision use that autograd path instead.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

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
_F0 = np.float32(0.0)


@numba.njit(fastmath=True, cache=True, nogil=True)
def _nb_kernel(x, log_mu, log_theta, theta, pi, zero_inflated, nll, g_lm, g_lt, g_pi):
    # float32 scalars throughout (expf/logf); the per-cell sum accumulates in float64
    n, G = x.shape
    for i in range(n):
        acc = 0.0
        for g in range(G):
            th = theta[i, g]
            lt = log_theta[i, g]
            lm = log_mu[i, g]
            mu = math.exp(lm)
            s = th + mu
            L = math.log(s)
            inv_s = _F1 / s
            r = mu * inv_s
            omr = th * inv_s  # 1 - r
            nb0 = th * (lt - L)  # log NB(0)
            xv = x[i, g]
            if zero_inflated:
                p = pi[i, g]
                ep = math.exp(-abs(p))
                inv_ep = _F1 / (_F1 + ep)
                if p > _F0:
                    sp_np = math.log1p(ep)  # softplus(-p)
                    sig_np = ep * inv_ep  # sigmoid(-p)
                else:
                    sp_np = -p + math.log1p(ep)
                    sig_np = inv_ep
                w = nb0 - p
                if xv > _F0:
                    term = w
                    gw = _F1
                else:
                    ew = math.exp(-abs(w))
                    inv_ew = _F1 / (_F1 + ew)
                    if w > _F0:
                        term = w + math.log1p(ew)
                        gw = inv_ew
                    else:
                        term = math.log1p(ew)
                        gw = ew * inv_ew
                ll = term - sp_np
                g_pi[i, g] = sig_np - gw
            else:
                ll = nb0
                gw = _F1
            glt = gw * (nb0 + th * r)
            if xv > _F0:
                ll += xv * (lm - L)
                lg, dg = _lgamma_ratio(np.float64(xv), np.float64(th))
                ll += np.float32(lg)
                glt += th * np.float32(dg) - xv * omr
            acc += ll
            g_lm[i, g] = xv * omr - gw * th * r
            g_lt[i, g] = glt
        nll[i] = -acc


_POOL: dict = {}


def _run_rows(arrays, zi, nll, outs, n):
    """Run the kernel over row blocks on torch's thread count (numba releases the GIL).

    Plain Python threads rather than numba's parallel layer: an OpenMP pool of numba's own
    would spin beside torch's and slow every other op on a small machine.
    """
    n_threads = max(1, min(torch.get_num_threads(), n // 32))
    if n_threads == 1:
        _nb_kernel(*arrays, zi, nll, *outs)
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = _POOL.get(n_threads)
    if pool is None:
        pool = _POOL[n_threads] = ThreadPoolExecutor(n_threads)
    bounds = np.linspace(0, n, n_threads + 1).astype(int)

    def block(k):
        a, b = bounds[k], bounds[k + 1]
        x, lm, lt, th, pi = arrays
        g_lm, g_lt, g_pi = outs
        _nb_kernel(x[a:b], lm[a:b], lt[a:b], th[a:b], pi[a:b] if zi else pi, zi, nll[a:b],
                   g_lm[a:b], g_lt[a:b], g_pi[a:b] if zi else g_pi)

    list(pool.map(block, range(n_threads)))


class FusedCountNLL(torch.autograd.Function):
    """Per-cell -log NB/ZINB(x) (no lgamma(x + 1)); inputs (n, G), log_theta may be expanded."""

    @staticmethod
    def forward(ctx, log_mu, log_theta, pi_logits, x):
        n, G = log_mu.shape
        lt = log_theta.detach().expand(n, G).contiguous()  # one array layout = one compiled kernel
        th = lt.exp()
        zi = pi_logits is not None
        pi = pi_logits.detach() if zi else log_mu.new_empty((1, 1))
        nll = np.empty(n, dtype=np.float32)
        g_lm = torch.empty((n, G), dtype=torch.float32)
        g_lt = torch.empty((n, G), dtype=torch.float32)
        g_pi = torch.empty((n, G) if zi else (1, 1), dtype=torch.float32)
        arrays = (x.numpy(), log_mu.detach().numpy(), lt.numpy(), th.numpy(), pi.numpy())
        outs = (g_lm.numpy(), g_lt.numpy(), g_pi.numpy())
        _run_rows(arrays, zi, nll, outs, n)
        ctx.zi = zi
        ctx.save_for_backward(g_lm, g_lt, g_pi)
        return torch.from_numpy(nll)

    @staticmethod
    def backward(ctx, grad_out):
        g_lm, g_lt, g_pi = ctx.saved_tensors
        go = -grad_out.unsqueeze(1)  # the kernel's gradients are of +log-likelihood
        return g_lm * go, g_lt * go, (g_pi * go if ctx.zi else None), None


def fused_available(*tensors) -> bool:
    """The kernel runs on contiguous float32 CPU tensors."""
    return all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32) for t in tensors)


def fused_count_nll(likelihood: str, x, log_mu, log_theta, pi_logits=None) -> torch.Tensor:
    """Per-cell NB / ZINB negative log-likelihood without sum lgamma(x + 1), fused on CPU."""
    if log_theta.dim() == 1:
        log_theta = log_theta.unsqueeze(0)
    return FusedCountNLL.apply(log_mu.contiguous(), log_theta, pi_logits.contiguous() if likelihood == "zinb" else None,
                               x.contiguous())
