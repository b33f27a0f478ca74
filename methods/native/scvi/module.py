"""The scVI torch module: inference q(z|x), q(l|x); generative p(x|z,l,s); loss (negative ELBO).

Follows the paper's Online Methods ("scANVI: an extension to scVI", "Posterior inference",
"Hyperparameters"): z ~ N(0, I); l ~ LogNormal(l_mu[s], l_sigma[s]^2) with per-batch prior
from the data (or l observed); x_ng | z, l, s ~ ZINB(l * f_w(z, s), theta_g, f_h(z, s)) where
f_w ends in a softmax and f_w, f_h share their hidden layers; encoders on log1p(x); networks of
2 fully connected layers x 128 units, BatchNorm, ReLU, dropout; batch one-hot injected at every
hidden layer of the decoder.
"""
from __future__ import annotations

import contextlib
import math
import threading
from typing import Optional

import numba
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .fused import fused_available, fused_count_nll
from .distributions import (
    SparseCounts,
    count_nll_training,
    kl_normal_normal,
    kl_normal_standard,
    log_count_likelihood,
    log_factorial_per_cell,
)

VAR_EPS = 1e-4  # floor on posterior variances, keeps the encoders' exp() away from 0
DISPERSIONS = ("gene", "gene-batch", "gene-label")


class FCLayers(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout, repeated; a categorical covariate (e.g. the batch)
    enters every layer as a one-hot column block.
    """

    def __init__(self, n_in: int, n_out: int, n_layers: int = 1, n_hidden: int = 128,
                 n_cat: int = 0, dropout: float = 0.1, inject_all: bool = True):
        super().__init__()
        dims = [n_in] + [n_hidden] * (n_layers - 1) + [n_out]
        self.n_cat = n_cat if n_cat > 1 else 0  # one category carries no information
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.cat_layers = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            with_cat = self.n_cat > 0 and (inject_all or i == 0)
            self.linears.append(nn.Linear(a + (self.n_cat if with_cat else 0), b))
            self.norms.append(nn.BatchNorm1d(b, momentum=0.01, eps=1e-3))
            self.cat_layers.append(with_cat)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, cat: Optional[torch.Tensor] = None, update_stats: bool = True) -> torch.Tensor:
        """``update_stats=False``: in training, normalise with the batch's statistics without
        reading or writing the running ones (another thread may be updating them)."""
        for lin, norm, with_cat in zip(self.linears, self.norms, self.cat_layers):
            if with_cat and cat is not None:
                # [x, onehot(s)] through one matmul: its backward is one GEMM per weight, where
                # a row lookup of W_s would zero-fill and add full-size slice gradients each step
                # (and advanced indexing's backward is not deterministic with several threads)
                x = lin(torch.cat([x, F.one_hot(cat, self.n_cat).to(x.dtype)], dim=-1))
            elif with_cat:
                x = F.linear(x, lin.weight[:, : lin.in_features - self.n_cat], lin.bias)
            else:
                x = lin(x)
            if update_stats or not self.training:
                x = norm(x)
            else:
                x = F.batch_norm(x, None, None, norm.weight, norm.bias, True, 0.0, norm.eps)
            x = dropout(F.relu(x), self.dropout, self.training)
        return x


    def forward_first_units(self, x: torch.Tensor, cat: Optional[torch.Tensor], n_units: int) -> torch.Tensor:
        """A one-layer stack evaluated for its first ``n_units`` outputs only (same function; in
        training the running statistics are neither read nor written)."""
        lin, norm = self.linears[0], self.norms[0]
        if self.cat_layers[0] and cat is not None:
            x = torch.cat([x, F.one_hot(cat, self.n_cat).to(x.dtype)], dim=-1)
        elif self.cat_layers[0]:
            x = F.pad(x, (0, self.n_cat))  # zero one-hot block: no covariate term
        h = LeadingRowsLinear.apply(x, lin.weight, lin.bias, n_units)
        running = (None, None) if self.training else (norm.running_mean[:n_units], norm.running_var[:n_units])
        h = F.batch_norm(h, *running, norm.weight[:n_units], norm.bias[:n_units], self.training, 0.0, norm.eps)
        return dropout(F.relu(h), self.dropout, self.training)


class RowBlockLinear(torch.autograd.Function):
    """``F.linear(h, weight, bias)`` split along the output units into contiguous blocks.

    Same numbers as slicing one (n, sum sizes) output, but each block is its own contiguous
    (n, size) matmul output, and the backward writes the weight/bias gradient blocks into one
    buffer: slicing would zero-fill and add full-size gradient buffers on every step.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, sizes, defer=None):
        ctx.save_for_backward(h, weight)
        ctx.sizes, ctx.defer = sizes, defer
        outs, start = [], 0
        for size in sizes:
            outs.append(torch.addmm(bias[start:start + size], h, weight[start:start + size].t()))
            start += size
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        h, weight = ctx.saved_tensors
        grads = [torch.zeros((h.shape[0], size), dtype=h.dtype, device=h.device) if g is None else g
                 for size, g in zip(ctx.sizes, grads)]
        g_h, start = None, 0
        for size, g in zip(ctx.sizes, grads):
            block = weight[start:start + size]
            g_h = torch.mm(g, block) if g_h is None else g_h.addmm_(g, block)
            start += size
        if ctx.defer is not None:
            # the caller computes the parameter gradients (weight_grads) elsewhere and sets them
            ctx.defer(h, grads)
            return g_h, None, None, None, None
        g_w, g_b = RowBlockLinear.weight_grads(h, grads, weight)
        return g_h, g_w, g_b, None, None

    @staticmethod
    def weight_grads(h, grads, weight):
        """(weight gradient, bias gradient), block by block into one buffer each."""
        g_w = torch.empty_like(weight)
        g_b = torch.empty(weight.shape[0], dtype=weight.dtype, device=weight.device)
        start = 0
        for g in grads:
            size = g.shape[1]
            torch.mm(g.t(), h, out=g_w[start:start + size])
            torch.sum(g, 0, out=g_b[start:start + size])
            start += size
        return g_w, g_b


class LeadingRowsLinear(torch.autograd.Function):
    """``F.linear(x, weight[:k], bias[:k])`` whose backward writes the gradient of the first
    ``k`` rows straight into a full-size buffer (a slice's backward also copies it there)."""

    @staticmethod
    def forward(ctx, x, weight, bias, k):
        ctx.save_for_backward(x, weight)
        ctx.k = k
        return torch.addmm(bias[:k], x, weight[:k].t())

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        k = ctx.k
        g_w = torch.empty_like(weight)
        g_w[k:].zero_()  # only the rows the forward did not use (zero-filling all of it cost ~0.4 ms)
        torch.mm(g.t(), x, out=g_w[:k])
        g_b = torch.empty(weight.shape[0], dtype=weight.dtype, device=weight.device)
        g_b[k:].zero_()
        torch.sum(g, 0, out=g_b[:k])
        g_x = torch.mm(g, weight[:k]) if ctx.needs_input_grad[0] else None
        return g_x, g_w, g_b, None


class GaussianHead(nn.Module):
    """Mean and variance (exp link + floor) of a diagonal Gaussian from hidden units.

    The mean and log-variance layers are one (2 n_out x n_hidden) linear map: one matmul per
    pass instead of two (with n_out = 10 each small matmul is overhead-bound on CPU).
    """

    def __init__(self, n_hidden: int, n_out: int):
        super().__init__()
        self.n_out = n_out
        self.linear = nn.Linear(n_hidden, 2 * n_out)

    def forward(self, h):
        out = self.linear(h)
        return out[..., : self.n_out], out[..., self.n_out:].exp() + VAR_EPS

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights saved before the merge have separate mean / log_var layers
        for kind in ("weight", "bias"):
            m, v = f"{prefix}mean.{kind}", f"{prefix}log_var.{kind}"
            if m in state_dict and v in state_dict:
                state_dict[f"{prefix}linear.{kind}"] = torch.cat([state_dict.pop(m), state_dict.pop(v)])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


_DROPOUT_LEVELS = 1 << 16  # 16 random bits per element


def dropout_keep_mask(shape, p: float, dtype=torch.float32) -> torch.Tensor:
    """Inverted-dropout mask: 0 with probability ``round(p * 2^16) / 2^16`` (within 2^-17 of
    p), else 1 / (1 - that probability), so its mean is exactly 1.

    One 64-bit draw of torch's seeded CPU generator keys a counter-based hash (splitmix64 of
    the element index / 4, whose four 16-bit lanes feed four elements) evaluated in one
    vectorised numba pass: ~5x cheaper than the int64 ``random_`` + compare + ``where`` it
    replaced, which was itself ~5x cheaper than ``F.dropout``'s float64 uniform per element
    (torch 2.13, one thread). Deterministic: a function of the seeded stream and the index only.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    n = math.prod(shape)
    cut = round(p * _DROPOUT_LEVELS)
    if cut >= _DROPOUT_LEVELS:  # p within 2^-17 of 1: every unit dropped (F.dropout's p = 1)
        return torch.zeros(shape, dtype=dtype)
    key = int(torch.empty((), dtype=torch.int64).random_(generator=current_generator()))
    out = np.empty(n, dtype=np.float32)
    _keep_mask(key, cut, np.float32(_DROPOUT_LEVELS / (_DROPOUT_LEVELS - cut)), out)
    mask = torch.from_numpy(out).view(shape)
    if dtype == torch.float32:
        return mask
    return mask.ne(0).to(dtype).mul_(_DROPOUT_LEVELS / (_DROPOUT_LEVELS - cut))  # the scale in dtype's precision


_U64 = np.uint64


@numba.njit(fastmath=True, error_model="numpy", cache=True, nogil=True)
def _keep_mask(key, cut, scale, out):
    """out[k] = 0 if lane k < cut else scale; the four 16-bit lanes of splitmix64(key + q *
    golden) feed elements 4q..4q+3 (one hash per four elements: ~3x cheaper than one each)."""
    base = _U64(key)
    n = out.shape[0]
    lanes = np.empty(4 * ((n + 3) // 4), dtype=np.uint16)
    for q in range(lanes.shape[0] // 4):
        z = base + _U64(q) * _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        z = z ^ (z >> _U64(31))
        lanes[4 * q] = z & _U64(0xFFFF)
        lanes[4 * q + 1] = (z >> _U64(16)) & _U64(0xFFFF)
        lanes[4 * q + 2] = (z >> _U64(32)) & _U64(0xFFFF)
        lanes[4 * q + 3] = z >> _U64(48)
    c = np.uint16(cut)
    for k in range(n):
        out[k] = scale if lanes[k] >= c else np.float32(0.0)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout (``F.dropout`` semantics) with the cheap CPU mask above; CUDA uses ``F.dropout``."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    return x * dropout_keep_mask(x.shape, p, x.dtype)


def reparameterize(mean, var):
    """One draw of N(mean, var), from this thread's random stream (``random_stream``)."""
    return mean + var.sqrt() * standard_normal_like(mean)


_STREAM = threading.local()


@contextlib.contextmanager
def random_stream(generator: Optional[torch.Generator]):
    """Draw this thread's dropout masks and Gaussian samples from ``generator`` (None: torch's
    default generator). A second training thread needs its own seeded stream: two threads
    drawing from the default one would take its numbers in an order that depends on timing."""
    before = getattr(_STREAM, "generator", None)
    _STREAM.generator = generator
    try:
        yield
    finally:
        _STREAM.generator = before


def current_generator() -> Optional[torch.Generator]:
    return getattr(_STREAM, "generator", None)


def standard_normal_like(t: torch.Tensor) -> torch.Tensor:
    """``torch.randn_like(t)`` from this thread's random stream (the same numbers without one)."""
    return torch.randn(t.shape, dtype=t.dtype, device=t.device, generator=current_generator())


class VAE(nn.Module):
    """scVI (paper, Online Methods). ``loss`` returns per-cell terms of the negative ELBO.

    Parameters mirror the paper's hyperparameters; ``library`` is "latent" (the paper's
    log-normal l with a per-batch prior) or "observed" (l = total counts).
    """

    def __init__(self, n_genes: int, n_batch: int = 1, n_labels: int = 1, n_latent: int = 10,
                 n_hidden: int = 128, n_layers: int = 2, dropout: float = 0.1,
                 gene_likelihood: str = "zinb", dispersion: str = "gene", library: str = "latent",
                 encode_covariates: bool = False,
                 library_log_means=None, library_log_vars=None):
        super().__init__()
        if dispersion not in DISPERSIONS:
            raise ValueError(f"dispersion must be one of {DISPERSIONS}, got {dispersion!r}")
        if library not in ("latent", "observed"):
            raise ValueError(f"library must be 'latent' or 'observed', got {library!r}")
        self.n_genes, self.n_batch, self.n_labels, self.n_latent = n_genes, n_batch, n_labels, n_latent
        self.gene_likelihood, self.dispersion, self.library = gene_likelihood, dispersion, library
        self.encode_covariates = encode_covariates
        enc_cat = n_batch if encode_covariates else 0
        # q(z|x) has n_layers hidden layers, q(l|x) one; their first layers read the same
        # log1p(x), so they run as one (n_genes -> 2 n_hidden) matmul: same model, one pass.
        n_first = 2 * n_hidden if library == "latent" else n_hidden
        self.encoder_first = FCLayers(n_genes, n_first, 1, n_first, n_cat=enc_cat, dropout=dropout)
        self.z_encoder_rest = (
            FCLayers(n_hidden, n_hidden, n_layers - 1, n_hidden, n_cat=enc_cat, dropout=dropout)
            if n_layers > 1 else None
        )
        self.z_head = GaussianHead(n_hidden, n_latent)
        self.l_head = GaussianHead(n_hidden, 1) if library == "latent" else None
        self.n_hidden = n_hidden
        self.decoder = FCLayers(n_latent, n_hidden, n_layers, n_hidden, n_cat=n_batch, dropout=0.0)
        n_heads = 2 if gene_likelihood == "zinb" else 1
        # f_w (softmax frequencies) and f_h (dropout logits) share the hidden layers (paper)
        self.px_heads = nn.Linear(n_hidden, n_heads * n_genes)
        n_disp = {"gene": 1, "gene-batch": n_batch, "gene-label": n_labels}[dispersion]
        self.log_theta = nn.Parameter(torch.randn(n_disp, n_genes) if n_disp > 1 else torch.randn(n_genes))
        lm = torch.zeros(n_batch) if library_log_means is None else torch.as_tensor(library_log_means, dtype=torch.float32)
        lv = torch.ones(n_batch) if library_log_vars is None else torch.as_tensor(library_log_vars, dtype=torch.float32)
        self.register_buffer("library_log_means", lm.reshape(-1))
        self.register_buffer("library_log_vars", lv.reshape(-1))

    # ----------------------------------------------------------------- inference
    def inference(self, x: torch.Tensor, batch: torch.Tensor, n_samples: int = 0,
                  log_x: Optional[torch.Tensor] = None) -> dict:
        """q(z|x[,s]) and q(l|x[,s]); ``n_samples`` = 0 gives one sample per cell (training).
        ``log_x``: log1p(x) when the caller has it (the minibatch computes it on the non-zeros)."""
        cat = batch if self.encode_covariates else None
        h = self.encoder_first(torch.log1p(x) if log_x is None else log_x, cat)
        hz = h[:, : self.n_hidden]
        if self.z_encoder_rest is not None:
            hz = self.z_encoder_rest(hz, cat)
        qz_m, qz_v = self.z_head(hz)
        out = {"qz_m": qz_m, "qz_v": qz_v}
        shape = (n_samples,) if n_samples else ()
        out["z"] = qz_m + qz_v.sqrt() * torch.randn(shape + qz_m.shape, device=x.device)
        if self.library == "latent":
            ql_m, ql_v = self.l_head(h[:, self.n_hidden:])
            out.update(ql_m=ql_m, ql_v=ql_v)
            out["log_library"] = ql_m + ql_v.sqrt() * torch.randn(shape + ql_m.shape, device=x.device)
        else:
            log_lib = torch.log(x.sum(-1, keepdim=True).clamp(min=1.0))
            out["log_library"] = log_lib.expand(shape + log_lib.shape) if n_samples else log_lib
        return out

    def z_encoder_parameters(self) -> list:
        """The parameters ``encode_z`` reads: the shared first layer, the rest of q(z|x) and its head."""
        parts = [self.encoder_first, self.z_encoder_rest, self.z_head]
        return [p for part in parts if part is not None for p in part.parameters()]

    def encode_z(self, x: Optional[torch.Tensor], batch: torch.Tensor, log_x: Optional[torch.Tensor] = None,
                 mean: bool = False) -> torch.Tensor:
        """One draw of q(z|x) (or its mean) without the library encoder (running statistics untouched);
        ``x`` may be None when ``log_x`` is given."""
        cat = batch if self.encode_covariates else None
        hz = self.encoder_first.forward_first_units(torch.log1p(x) if log_x is None else log_x, cat, self.n_hidden)
        if self.z_encoder_rest is not None:
            hz = self.z_encoder_rest(hz, cat, update_stats=False)
        qz_m, qz_v = self.z_head(hz)
        return qz_m if mean else reparameterize(qz_m, qz_v)

    # ---------------------------------------------------------------- generative
    def decode_scale_logits(self, z: torch.Tensor, batch: Optional[torch.Tensor]):
        """(log softmax frequencies log f_w(z, s), dropout logits f_h(z, s) or None)."""
        lead = z.shape[:-1]
        zf = z.reshape(-1, z.shape[-1])
        if batch is not None and zf.shape[0] != batch.shape[0]:
            batch = batch.repeat(zf.shape[0] // batch.shape[0])
        h = self.decoder(zf, batch if self.n_batch > 1 else None)
        n_heads = self.px_heads.out_features // self.n_genes
        heads = RowBlockLinear.apply(h, self.px_heads.weight, self.px_heads.bias, (self.n_genes,) * n_heads,
                                     self.defer_heads_grads)
        log_scale = F.log_softmax(heads[0], dim=-1).reshape(lead + (self.n_genes,))
        pi = heads[1].reshape(lead + (self.n_genes,)) if self.gene_likelihood == "zinb" else None
        return log_scale, pi

    def log_theta_for(self, batch: torch.Tensor, label: Optional[torch.Tensor]) -> torch.Tensor:
        if self.dispersion == "gene":
            return self.log_theta
        if self.dispersion == "gene-batch":
            return self.log_theta.index_select(0, batch)  # deterministic backward (see FCLayers)
        if label is None:
            raise ValueError("dispersion='gene-label' needs the cell labels")
        return self.log_theta.index_select(0, label.clamp(min=0))

    def generative(self, z, log_library, batch, label=None) -> dict:
        log_scale, pi = self.decode_scale_logits(z, batch)
        return {"log_mu": log_library + log_scale, "log_scale": log_scale, "pi_logits": pi,
                "log_theta": self.log_theta_for(batch, label)}

    # --------------------------------------------------------------------- loss
    def kl_library(self, inf: dict, batch: torch.Tensor) -> torch.Tensor:
        if self.library != "latent":
            return torch.zeros(inf["z"].shape[-2], device=inf["z"].device)
        prior_m = self.library_log_means[batch].unsqueeze(-1)
        prior_v = self.library_log_vars[batch].unsqueeze(-1)
        return kl_normal_normal(inf["ql_m"], inf["ql_v"], prior_m, prior_v)

    use_fused = True  # the fused CPU kernel (fused.py); False = the autograd path
    #: ``fn(h, grads)``: hand the decoder heads' weight and bias gradients to ``fn`` (which sets
    #: ``px_heads.weight.grad`` / ``.bias.grad``, e.g. on another thread) instead of computing them
    #: in the backward (the model's two-thread step); None computes them in the backward
    defer_heads_grads = None

    def reconstruction(self, x, nz: SparseCounts, gen: dict) -> torch.Tensor:
        """Per-cell -log p(x | z, l, s) without the constant sum lgamma(x + 1)."""
        if (self.use_fused and self.gene_likelihood in ("zinb", "nb") and gen["log_mu"].dim() == 2
                and fused_available(x, gen["log_mu"], gen["log_theta"], gen["pi_logits"])):
            return fused_count_nll(self.gene_likelihood, x, gen["log_mu"], gen["log_theta"], gen["pi_logits"], nz)
        return count_nll_training(self.gene_likelihood, x, nz, gen["log_mu"], gen["log_theta"], gen["pi_logits"])

    def loss(self, x, nz: SparseCounts, batch, label=None, kl_weight: float = 1.0, log_x=None) -> dict:
        """Per-cell negative ELBO terms; ``total`` = recon + kl_weight * (KL_z + KL_l)."""
        inf = self.inference(x, batch, log_x=log_x)
        gen = self.generative(inf["z"], inf["log_library"], batch, label)
        recon = self.reconstruction(x, nz, gen)
        kl_z = kl_normal_standard(inf["qz_m"], inf["qz_v"])
        kl_l = self.kl_library(inf, batch)
        return {"total": recon + kl_weight * (kl_z + kl_l), "recon": recon, "kl_z": kl_z, "kl_l": kl_l}

    # --------------------------------------------------------------- evaluation
    @torch.no_grad()
    def log_likelihood_full(self, x, gen) -> torch.Tensor:
        """Exact per-sample log p(x | z, l, s) with constants (for ELBO / marginal LL)."""
        return log_count_likelihood(self.gene_likelihood, x, gen["log_mu"], gen["log_theta"], gen["pi_logits"]).sum(-1)

    @torch.no_grad()
    def marginal_ll(self, x, nz: SparseCounts, batch, label=None, n_mc: int = 100, log_x=None) -> torch.Tensor:
        """Importance-sampled log p(x) per cell with q(z|x) q(l|x) as proposal."""
        inf = self.inference(x, batch, n_samples=n_mc, log_x=log_x)
        gen = self.generative(inf["z"], inf["log_library"], batch, label)
        log_px = self._log_lik_samples(x, nz, gen)
        z = inf["z"]
        log_w = log_px + _log_normal(z, torch.zeros_like(z), torch.ones_like(z)) - _log_normal(z, inf["qz_m"], inf["qz_v"])
        if self.library == "latent":
            ll = inf["log_library"]
            log_w = log_w + _log_normal(ll, self.library_log_means[batch].unsqueeze(-1),
                                        self.library_log_vars[batch].unsqueeze(-1)) - _log_normal(ll, inf["ql_m"], inf["ql_v"])
        return torch.logsumexp(log_w, 0) - math.log(n_mc)

    def _log_lik_samples(self, x, nz, gen):
        """log p(x|z,l) for each MC sample (S, n), constants included, via the fast form."""
        S = gen["log_mu"].shape[0]
        n = x.shape[0]
        log_theta = gen["log_theta"]
        out = []
        for s in range(S):
            nll = count_nll_training(self.gene_likelihood, x, nz, gen["log_mu"][s], log_theta,
                                     None if gen["pi_logits"] is None else gen["pi_logits"][s])
            out.append(-nll)
        return torch.stack(out) - log_factorial_per_cell(nz, n)

    @torch.no_grad()
    def elbo_terms(self, x, nz, batch, label=None, log_x=None) -> dict:
        """Per-cell -ELBO (with constants, KL weight 1) and reconstruction error, one sample."""
        out = self.loss(x, nz, batch, label, kl_weight=1.0, log_x=log_x)
        const = log_factorial_per_cell(nz, x.shape[0])
        recon = out["recon"] + const
        return {"elbo": recon + out["kl_z"] + out["kl_l"], "recon": recon}


def _log_normal(x, mean, var):
    return (-0.5 * ((x - mean).pow(2) / var + var.log() + math.log(2 * math.pi))).sum(-1)
