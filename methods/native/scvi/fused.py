"""Fused CPU path for the NB / ZINB reconstruction term (value and gradient in one pass).

Training spends most of its non-matmul time in the count likelihood. Its value and its
gradients with respect to log mu, log theta and the zero-inflation logits are computed in
the forward pass, so the backward pass is three multiplies. One numba kernel walks the
minibatch a cell (row) at a time:

1. every gene of the row as if its count were 0: a loop that LLVM vectorises (AVX2 /
   AVX-512), with float32 exp / log written out below (Cephes' polynomials; numba has no
   vector math library without Intel's SVML, and its scalar libm calls were ~5x slower than
   ATen). This replaced ~20 ATen/numpy passes over (cells, genes) arrays, each a fresh
   memory round trip, and softplus, which ATen evaluates one element at a time;
2. the row's non-zero counts (its CSR slice, ~10-25% of the entries), which add what a
   positive count changes: x log(mu / (theta + mu)), lgamma(x + theta) - lgamma(theta) and
   the ZINB branch for x > 0, reading the row's step-1 terms while they are in L1 cache. For
   small integer counts lgamma(x + theta) - lgamma(theta) = sum_{k<x} log(theta + k) (one log
   of a product) and its theta-derivative sum_{k<x} 1 / (theta + k) avoid lgamma/digamma.

The constant -lgamma(x + 1) is left out (as in ``distributions.count_nll_training``, whose
math this is and against which it is tested); CUDA tensors and double precision use that
autograd path instead.
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .distributions import SparseCounts

_SMALL_COUNT = 16  # below this, lgamma ratios by products (exact for integer counts)


@numba.njit(fastmath=True, error_model="numpy", cache=True, inline="always")
def _digamma(y):
    acc = 0.0
    while y < 6.0:
        acc -= 1.0 / y
        y += 1.0
    iy = 1.0 / y
    iy2 = iy * iy
    return acc + math.log(y) - 0.5 * iy - iy2 * (1.0 / 12 - iy2 * (1.0 / 120 - iy2 / 252))


@numba.njit(fastmath=True, error_model="numpy", cache=True, inline="always")
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


_F0, _FH, _F1 = np.float32(0.0), np.float32(0.5), np.float32(1.0)


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


@intrinsic
def _f32_from_bits(typingctx, bits):
    """Reinterpret an int32 as float32 (LLVM bitcast: one vector instruction once vectorised)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def _bits_from_f32(typingctx, value):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@numba.njit(fastmath=True, error_model="numpy", cache=True, inline="always")
def _expf(x):
    """float32 exp (Cephes expf, within ~1 ulp; tested): x = n ln 2 + r, a degree-5 polynomial
    in r, 2^n from the exponent bits. Inputs are clamped to the normal range."""
    x = min(max(x, np.float32(-87.0)), np.float32(88.0))
    y = x * np.float32(1.44269504088896341) + _FH
    k = np.int32(y)  # truncation, then floor (math.floor on float32 calls libm's floorf: no vectorising)
    k = k - np.int32(1) if np.float32(k) > y else k
    n = np.float32(k)
    r = x - n * np.float32(0.693359375) + n * np.float32(2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    return (p * (r * r) + r + _F1) * _f32_from_bits((k + np.int32(127)) << np.int32(23))


@numba.njit(fastmath=True, error_model="numpy", cache=True, inline="always")
def _logf(x):
    """float32 log of a positive normal float (Cephes logf, within ~2 ulp; tested): x = m 2^e
    with m in [sqrt(1/2), sqrt(2)), a degree-9 polynomial in m - 1."""
    b = _bits_from_f32(x)
    e = ((b >> np.int32(23)) & np.int32(255)) - np.int32(126)
    m = _f32_from_bits((b & np.int32(0x007FFFFF)) | np.int32(0x3F000000))  # [0.5, 1)
    small = m < np.float32(0.707106781186547524)
    m = m + m if small else m
    e = e - np.int32(1) if small else e
    m = m - _F1
    z = m * m
    p = np.float32(7.0376836292e-2)
    p = p * m - np.float32(1.1514610310e-1)
    p = p * m + np.float32(1.1676998740e-1)
    p = p * m - np.float32(1.2420140846e-1)
    p = p * m + np.float32(1.4249322787e-1)
    p = p * m - np.float32(1.6668057665e-1)
    p = p * m + np.float32(2.0000714765e-1)
    p = p * m - np.float32(2.4999993993e-1)
    p = p * m + np.float32(3.3333331174e-1)
    fe = np.float32(e)
    y = m * z * p + fe * np.float32(-2.12194440e-4) - _FH * z
    return m + y + fe * np.float32(0.693359375)


@numba.njit(fastmath=True, error_model="numpy", cache=True, inline="always")
def _softplus_sigmoid(v):
    """(softplus(v), sigmoid(v)) from one exp(-|v|) (no overflow for any v)."""
    e = _expf(-abs(v))
    inv = _F1 / (_F1 + e)
    return max(v, _F0) + _logf(_F1 + e), (inv if v >= _F0 else e * inv)


@numba.njit(fastmath=True, error_model="numpy", cache=True, nogil=True)
def _zero_count_row(log_mu, log_theta, theta, pi, zero_inflated, lm_l, omr, thr, nb0, gw, sp_w, g_lm, g_lt, g_pi):
    """One cell, every gene as a zero count (a loop LLVM vectorises): returns the log-likelihood,
    writes the gradients and the terms the non-zeros reuse (1-D arrays over genes). Compiled on
    its own, not inlined: inside the row loop LLVM's vectorised code for it was ~35% slower."""
    acc = 0.0
    for g in range(log_mu.shape[0]):
        th = theta[g]
        mu = _expf(log_mu[g])
        s = mu + th
        log_s = _logf(s)
        inv_s = _F1 / s
        thr_g = th * mu * inv_s
        nb0_g = th * (log_theta[g] - log_s)
        lm_l[g] = log_mu[g] - log_s
        omr[g] = th * inv_s
        thr[g] = thr_g
        nb0[g] = nb0_g
        if zero_inflated:
            p = pi[g]
            sp_w_g, gw_g = _softplus_sigmoid(nb0_g - p)
            sp_np, sig_np = _softplus_sigmoid(-p)  # softplus(-pi), sigmoid(-pi)
            acc += sp_w_g - sp_np
            gw[g] = gw_g
            sp_w[g] = sp_w_g
            g_pi[g] = sig_np - gw_g
            g_lt[g] = (nb0_g + thr_g) * gw_g
            g_lm[g] = -(thr_g * gw_g)
        else:
            acc += nb0_g
            g_lt[g] = nb0_g + thr_g
            g_lm[g] = -thr_g
    return acc


@numba.njit(fastmath=True, error_model="numpy", cache=True, nogil=True)
def _count_nll_rows(r0, r1, indptr, cols, vals, log_mu, log_theta, theta, pi, zero_inflated,
                    ll, g_lm, g_lt, g_pi, lg_table, dg_table):
    """Per-cell log-likelihood (no -lgamma(x + 1)) and its gradients for rows r0..r1.

    ``log_theta``/``theta``: (1, G) per gene or (n, G) per cell. ``lg_table``/``dg_table``
    (x, gene): the lgamma ratios for small counts when theta is per gene; (1, 1) otherwise.
    """
    G = log_mu.shape[1]
    per_cell_theta = theta.shape[0] > 1
    use_table = lg_table.shape[0] == _SMALL_COUNT
    # the row's x = 0 terms, kept for its non-zeros: log mu - log(theta + mu), theta / (theta + mu),
    # theta mu / (theta + mu), log NB(0), sigmoid(w), softplus(w)
    rows = np.empty((6, G), np.float32)
    lm_l, omr, thr, nb0, gw, sp_w = rows[0], rows[1], rows[2], rows[3], rows[4], rows[5]
    for i in range(r0, r1):
        t = i if per_cell_theta else 0
        # 1. every gene as a zero count
        acc = _zero_count_row(log_mu[i], log_theta[t], theta[t], pi[i if zero_inflated else 0], zero_inflated,
                              lm_l, omr, thr, nb0, gw, sp_w, g_lm[i], g_lt[i], g_pi[i if zero_inflated else 0])
        # 2. what the row's non-zero counts change
        for k in range(indptr[i], indptr[i + 1]):
            g = cols[k]
            xv = vals[k]
            th = theta[t, g]
            if use_table and xv < _SMALL_COUNT and xv == math.floor(xv):
                lg = lg_table[int(xv), g]
                dg = dg_table[int(xv), g]
            else:
                lg, dg = _lgamma_ratio(np.float64(xv), np.float64(th))
            d_ll = xv * lm_l[g] + np.float32(lg)
            d_lt = th * np.float32(dg) - xv * omr[g]
            d_lm = xv * omr[g]
            if zero_inflated:
                # x > 0: log-likelihood w - softplus(-pi) (not softplus(w) - ...), d/dw = 1 (not sigmoid(w))
                b = nb0[g]
                dgw = _F1 - gw[g]
                d_ll += (b - pi[i, g]) - sp_w[g]
                d_lt += dgw * (b + thr[g])
                d_lm -= dgw * thr[g]
                g_pi[i, g] -= dgw
            acc += d_ll
            g_lm[i, g] += d_lm
            g_lt[i, g] += d_lt
        ll[i] = acc


# ------------------------------------------------------------------ torch's OpenMP team
# At more than one torch thread the row blocks run on the OpenMP team that torch's own ops use
# (GOMP_parallel of torch's libgomp, with a numba cfunc as the region's body). Its workers spin
# for a while after every torch op, so they take a block at once; a Python thread of ours would
# compete with the spinning worker for the core instead (measured: no gain, or a loss, at 2 threads).
# Slots of the int64 array the region's body reads (sizes, C function and array addresses):
_N, _G, _TH_ROWS, _PI_ROWS, _PI_COLS, _TAB_ROWS, _TAB_COLS, _NNZ, _THREAD_NUM, _NUM_THREADS = range(10)
_INDPTR, _COLS, _VALS, _LOG_MU, _LOG_THETA, _THETA, _PI, _LL, _G_LM, _G_LT, _G_PI, _LG, _DG, _ZI = range(10, 24)
_META_SLOTS = 24


@intrinsic
def _voidptr(typingctx, addr):
    """An int64 address as a void pointer (for numba.carray)."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())
    return types.voidptr(types.int64), codegen


@intrinsic
def _call_int_function(typingctx, addr):
    """Call the C function ``int f(void)`` at an int64 address (omp_get_thread_num and the like)."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        return builder.call(builder.inttoptr(args[0], fnty.as_pointer()), [])
    return types.int32(types.int64), codegen


@numba.njit(inline="always")
def _f32_array(m, slot, shape):
    return numba.carray(_voidptr(m[slot]), shape, np.float32)


@numba.cfunc(types.void(types.voidptr), error_model="numpy", cache=True)
def _omp_row_block(data):
    """Body of the parallel region: this OpenMP thread's block of rows."""
    m = numba.carray(data, (_META_SLOTS,), np.int64)
    n, G, nnz = m[_N], m[_G], m[_NNZ]
    t, nt = np.int64(_call_int_function(m[_THREAD_NUM])), np.int64(_call_int_function(m[_NUM_THREADS]))
    theta_shape, pi_shape, tab_shape = (m[_TH_ROWS], G), (m[_PI_ROWS], m[_PI_COLS]), (m[_TAB_ROWS], m[_TAB_COLS])
    _count_nll_rows(n * t // nt, n * (t + 1) // nt,
                    numba.carray(_voidptr(m[_INDPTR]), (n + 1,), np.int64),
                    numba.carray(_voidptr(m[_COLS]), (nnz,), np.int64),
                    numba.carray(_voidptr(m[_VALS]), (nnz,), np.float32),
                    _f32_array(m, _LOG_MU, (n, G)), _f32_array(m, _LOG_THETA, theta_shape),
                    _f32_array(m, _THETA, theta_shape), _f32_array(m, _PI, pi_shape), m[_ZI] != 0,
                    numba.carray(_voidptr(m[_LL]), (n,), np.float64),
                    _f32_array(m, _G_LM, (n, G)), _f32_array(m, _G_LT, (n, G)), _f32_array(m, _G_PI, pi_shape),
                    numba.carray(_voidptr(m[_LG]), tab_shape, np.float64),
                    numba.carray(_voidptr(m[_DG]), tab_shape, np.float64))


def _torch_openmp():
    """(GOMP_parallel, omp_get_thread_num address, omp_get_num_threads address) of the libgomp
    that torch's ops run on, or None (another parallel backend, or no libgomp beside torch)."""
    import ctypes
    from pathlib import Path

    if "OpenMP" not in torch.__config__.parallel_info():
        return None
    for path in sorted((Path(torch.__file__).parent / "lib").glob("libgomp*.so*")):
        try:
            lib = ctypes.CDLL(str(path))  # already loaded by torch: the same handle, the same team
            parallel = lib.GOMP_parallel
            thread_num, num_threads = lib.omp_get_thread_num, lib.omp_get_num_threads
        except (OSError, AttributeError):
            continue
        parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        parallel.restype = None
        address = lambda f: ctypes.cast(f, ctypes.c_void_p).value
        return parallel, address(thread_num), address(num_threads)
    return None


_openmp = functools.cache(_torch_openmp)  # looked up once per process
_POOL: dict = {}


def _pack_meta(openmp, n, indptr, cols, vals, log_mu, log_theta, theta, pi, zero_inflated, ll, g_lm, g_lt, g_pi,
               lg_table, dg_table) -> np.ndarray:
    m = np.zeros(_META_SLOTS, dtype=np.int64)
    m[[_N, _G, _TH_ROWS, _PI_ROWS, _PI_COLS, _TAB_ROWS, _TAB_COLS, _NNZ]] = (
        n, log_mu.shape[1], theta.shape[0], *pi.shape, *lg_table.shape, len(cols))
    m[_THREAD_NUM], m[_NUM_THREADS] = openmp[1], openmp[2]
    arrays = (indptr, cols, vals, log_mu, log_theta, theta, pi, ll, g_lm, g_lt, g_pi, lg_table, dg_table)
    m[_INDPTR:_ZI] = [a.ctypes.data for a in arrays]
    m[_ZI] = int(zero_inflated)
    return m


# dtypes of _count_nll_rows' arguments after r0, r1 as _omp_row_block reads them (None: not an array)
_REGION_DTYPES = (np.int64, np.int64, np.float32, np.float32, np.float32, np.float32, np.float32, None,
                  np.float64, np.float32, np.float32, np.float32, np.float64, np.float64)


def _region_body_takes(args) -> bool:
    return all(dt is None or (a.dtype == dt and a.flags.c_contiguous) for a, dt in zip(args, _REGION_DTYPES))


def _run_rows(n: int, args) -> None:
    """Run the kernel over row blocks on torch's thread count. Each row is one thread's, so the
    per-cell values are the same for any thread count."""
    n_threads = max(1, min(torch.get_num_threads(), n // 32))
    if n_threads == 1:
        _count_nll_rows(0, n, *args)
        return
    openmp = _openmp()
    if openmp is not None and _region_body_takes(args):
        meta = _pack_meta(openmp, n, *args)  # ``args`` keeps every array alive during the call
        openmp[0](_omp_row_block.address, meta.ctypes.data, n_threads, 0)  # ctypes releases the GIL
        return
    _run_rows_on_python_threads(n, n_threads, args)


def _run_rows_on_python_threads(n: int, n_threads: int, args) -> None:
    """Fallback without torch's libgomp: plain Python threads (numba releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    cuts = np.linspace(0, n, n_threads + 1).astype(np.int64)
    pool = _POOL.get(n_threads)
    if pool is None:
        pool = _POOL[n_threads] = ThreadPoolExecutor(n_threads - 1)
    # the calling thread takes the first block itself instead of idling while the pool works
    futures = [pool.submit(_count_nll_rows, cuts[j], cuts[j + 1], *args) for j in range(1, n_threads)]
    _count_nll_rows(cuts[0], cuts[1], *args)
    for f in futures:
        f.result()


def _row_sorted(nz: SparseCounts, n: int):
    """(indptr, cols, values) of the non-zeros grouped by row (CSR)."""
    rows = nz.rows.numpy()
    cols, vals = nz.cols.numpy(), nz.values.numpy()
    if len(rows) > 1 and np.any(rows[1:] < rows[:-1]):
        order = np.argsort(rows, kind="stable")
        rows, cols, vals = rows[order], cols[order], vals[order]
    return np.searchsorted(rows, np.arange(n + 1)), np.ascontiguousarray(cols, np.int64), np.ascontiguousarray(vals)


class FusedCountNLL(torch.autograd.Function):
    """Per-cell -log NB/ZINB(x) (no lgamma(x + 1)); log_mu (n, G), log_theta (1 or n, G)."""

    @staticmethod
    def forward(ctx, log_mu, log_theta, pi_logits, nz):
        n, G = log_mu.shape
        zi = pi_logits is not None
        with torch.no_grad():
            theta = log_theta.detach().exp()
        g_lm = np.empty((n, G), dtype=np.float32)
        g_lt = np.empty((n, G), dtype=np.float32)
        g_pi = np.empty((n, G), dtype=np.float32) if zi else np.zeros((1, 1), dtype=np.float32)
        ll = np.empty(n, dtype=np.float64)
        if log_theta.shape[0] == 1:
            tables = tuple(a.numpy() for a in _lgamma_ratio_table(theta))
        else:
            tables = (np.zeros((1, 1)), np.zeros((1, 1)))
        pi = pi_logits.detach().numpy() if zi else np.zeros((1, 1), dtype=np.float32)
        _run_rows(n, (*_row_sorted(nz, n), log_mu.detach().numpy(), log_theta.detach().numpy(), theta.numpy(), pi,
                      zi, ll, g_lm, g_lt, g_pi, *tables))
        ctx.zi, ctx.theta_rows = zi, log_theta.shape[0]
        g_lm, g_lt = torch.from_numpy(g_lm), torch.from_numpy(g_lt)
        ctx.save_for_backward(g_lm, g_lt, torch.from_numpy(g_pi) if zi else g_lm)
        return torch.from_numpy(ll).neg_().float()

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
