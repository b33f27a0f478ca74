"""Count likelihoods of scVI (paper, Online Methods: "Posterior inference").

scVI integrates the Gamma-Poisson-Bernoulli hierarchy of the generative model into a
zero-inflated negative binomial (ZINB) for x_ng | z_n, l_n, s_n. This module holds

* exact log-probabilities (``log_nb``, ``log_zinb``, ``log_poisson``), used for evaluation
  (ELBO, marginal log-likelihood) and tested against scipy;
* a training-time reconstruction term (``count_nll_training``) that gives the same gradients
  with less work: it drops the constant -lgamma(x+1), computes lgamma(x + theta) only at the
  non-zero entries of the (sparse) minibatch, and rewrites the ZINB so that every dense entry
  needs two softplus and no lgamma/digamma.

Parametrisation (all tensors broadcast over cells x genes): ``log_mu`` = log mean of the NB
(log library + log softmax frequency), ``log_theta`` = log inverse dispersion, ``pi_logits``
= logit of the zero-inflation (dropout) probability.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

LIKELIHOODS = ("zinb", "nb", "poisson")
_LOG_2PI = math.log(2 * math.pi)


def log_nb(x: torch.Tensor, log_mu: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    """Element-wise log NB(x; mean mu, inverse dispersion theta), constants included."""
    theta = log_theta.exp()
    log_theta_mu = torch.logaddexp(log_theta, log_mu)
    return (
        theta * (log_theta - log_theta_mu)
        + x * (log_mu - log_theta_mu)
        + torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1)
    )


def log_zinb(x: torch.Tensor, log_mu: torch.Tensor, log_theta: torch.Tensor,
             pi_logits: torch.Tensor) -> torch.Tensor:
    """Element-wise log ZINB: with prob. sigmoid(pi_logits) a structural zero, else NB."""
    theta = log_theta.exp()
    log_theta_mu = torch.logaddexp(log_theta, log_mu)
    nb_zero = theta * (log_theta - log_theta_mu)  # log NB(0)
    softplus_neg_pi = F.softplus(-pi_logits)  # -log(1 - pi)
    case_zero = F.softplus(nb_zero - pi_logits) - softplus_neg_pi  # log(pi + (1 - pi) NB(0))
    case_pos = (
        -pi_logits - softplus_neg_pi + nb_zero + x * (log_mu - log_theta_mu)
        + torch.lgamma(x + theta) - torch.lgamma(theta) - torch.lgamma(x + 1)
    )
    return torch.where(x > 0, case_pos, case_zero)


def log_poisson(x: torch.Tensor, log_mu: torch.Tensor) -> torch.Tensor:
    """Element-wise log Poisson(x; mu), constants included."""
    return x * log_mu - log_mu.exp() - torch.lgamma(x + 1)


def log_count_likelihood(likelihood: str, x, log_mu, log_theta=None, pi_logits=None):
    """Exact element-wise log-likelihood for ``likelihood`` in :data:`LIKELIHOODS`."""
    if likelihood == "zinb":
        return log_zinb(x, log_mu, log_theta, pi_logits)
    if likelihood == "nb":
        return log_nb(x, log_mu, log_theta)
    if likelihood == "poisson":
        return log_poisson(x, log_mu)
    raise ValueError(f"gene_likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")


@dataclass
class SparseCounts:
    """Non-zero entries of a dense minibatch ``x`` (rows, cols, values), from its CSR slice."""

    rows: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor


def count_nll_training(likelihood: str, x: torch.Tensor, nz: SparseCounts, log_mu: torch.Tensor,
                       log_theta: Optional[torch.Tensor] = None,
                       pi_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-cell negative log-likelihood without the constant sum_g lgamma(x_ng + 1).

    ``log_theta`` is either per gene (G,) or per cell (n, G) (gene-batch / gene-label
    dispersion gathered per cell). The value equals ``-log_count_likelihood(...).sum(-1)``
    minus ``sum lgamma(x + 1)``; the terms that vanish at x = 0 (x log(mu / (theta + mu)) and
    lgamma(x + theta) - lgamma(theta)) are evaluated only where x > 0.

    ZINB identity used (w = log NB(0) - pi_logits):
      x = 0: softplus(w) - softplus(-pi_logits)
      x > 0: w - softplus(-pi_logits) + [x terms]
    so a dense entry costs where(x > 0, w, softplus(w)) - softplus(-pi_logits).
    """
    if likelihood == "poisson":
        return -(x * log_mu).sum(-1) + log_mu.exp().sum(-1)
    theta = log_theta.exp()
    log_theta_mu = torch.logaddexp(log_theta, log_mu)
    nb_zero = theta * (log_theta - log_theta_mu)
    dense = x * (log_mu - log_theta_mu)
    if likelihood == "zinb":
        w = nb_zero - pi_logits
        dense = dense + torch.where(x > 0, w, F.softplus(w)) - F.softplus(-pi_logits)
    elif likelihood == "nb":
        dense = dense + nb_zero
    else:
        raise ValueError(f"gene_likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    ll = dense.sum(-1)
    # lgamma(x + theta) - lgamma(theta) only at the non-zeros (about 10% of entries)
    theta_nz = theta[nz.cols] if theta.dim() == 1 else theta[nz.rows, nz.cols]
    sparse = torch.lgamma(nz.values + theta_nz) - torch.lgamma(theta_nz)
    ll = ll.index_add(0, nz.rows, sparse)
    return -ll


def log_factorial_per_cell(nz: SparseCounts, n_cells: int) -> torch.Tensor:
    """sum_g lgamma(x_ng + 1) per cell (the constant dropped during training)."""
    out = torch.zeros(n_cells, dtype=nz.values.dtype, device=nz.values.device)
    return out.index_add(0, nz.rows, torch.lgamma(nz.values + 1))


def kl_normal_standard(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, var) || N(0, I)) summed over the last axis."""
    # mean * mean, not pow(2): pow's backward builds scalar tensors (a few us each, every step)
    return 0.5 * (var + mean * mean - 1.0 - var.log()).sum(-1)


def kl_normal_normal(m1, v1, m2, v2) -> torch.Tensor:
    """KL(N(m1, v1) || N(m2, v2)) summed over the last axis (diagonal Gaussians)."""
    d = m1 - m2
    return 0.5 * ((v1 / v2) + d * d / v2 - 1.0 + v2.log() - v1.log()).sum(-1)


def log_normal_density(x, mean, var) -> torch.Tensor:
    """log N(x; mean, var) summed over the last axis."""
    d = x - mean
    return -0.5 * ((d * d / var) + var.log() + _LOG_2PI).sum(-1)


def gaussian_entropy(var: torch.Tensor) -> torch.Tensor:
    """Entropy of N(., var) summed over the last axis."""
    return 0.5 * (var.log() + 1.0 + _LOG_2PI).sum(-1)
