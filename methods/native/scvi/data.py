"""Data registration and minibatches for scVI/scANVI.

Counts stay a ``scipy.sparse.csr_matrix`` until a minibatch is drawn; only the minibatch is
made dense (128 x n_genes), together with its non-zero coordinates, which the training
likelihood uses (see ``distributions.count_nll_training``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from methods.base import MethodInputError

from .distributions import SparseCounts


def as_count_csr(X, field: str = "adata.X") -> sp.csr_matrix:
    """Check that ``X`` holds raw counts and return it as float32 CSR (no copy when possible)."""
    if sp.issparse(X):
        X = sp.csr_matrix(X)
    else:
        X = sp.csr_matrix(np.asarray(X))
    if X.dtype != np.float32:
        X = X.astype(np.float32)
    data = X.data
    if data.size == 0:
        raise MethodInputError(f"{field} has no non-zero entries; pass raw counts")
    if not np.all(np.isfinite(data)):
        raise MethodInputError(f"{field} contains NaN or infinite values; pass raw counts")
    if data.min() < 0 or not np.all(data == np.round(data)):
        raise MethodInputError(
            f"{field} must hold raw (non-negative integer) counts, found "
            f"{'negative' if data.min() < 0 else 'non-integer'} values; pass the raw count matrix "
            "(e.g. adata.layers['counts']), not normalised or log-transformed data"
        )
    X.sum_duplicates()  # canonical: sorted, no repeated (row, col), so the dense batch and its non-zeros agree
    return X


def categorical_codes(values, categories: Optional[Sequence] = None, field: str = "obs column"):
    """Integer codes (-1 for NaN) and the category list (sorted, or the given one)."""
    s = pd.Series(np.asarray(values, dtype=object))
    missing = s.isna().to_numpy()
    if categories is None:
        cats = pd.Index(pd.unique(s[~missing])).astype(str)
        categories = sorted(cats.tolist())
    index = pd.Index([str(c) for c in categories])
    codes = np.full(len(s), -1, dtype=np.int64)
    if (~missing).any():
        codes[~missing] = index.get_indexer(s[~missing].astype(str))
    return codes, list(index)


@dataclass
class Minibatch:
    x: Optional[torch.Tensor]  # dense counts (n, G); None when drawn with counts=False
    nz: Optional[SparseCounts]
    log_x: torch.Tensor  # log1p(x), the encoders' input (computed on the non-zeros only)
    batch: torch.Tensor  # (n,) int64
    label: torch.Tensor  # (n,) int64, -1 = unlabelled
    index: np.ndarray  # rows of the full data


class CountData:
    """Registered counts + batch/label codes; draws dense minibatches from the CSR matrix."""

    def __init__(self, X: sp.csr_matrix, batch: np.ndarray, label: Optional[np.ndarray] = None,
                 device: str | torch.device = "cpu"):
        self.X = X
        self.batch = np.asarray(batch, dtype=np.int64)
        self.label = np.full(X.shape[0], -1, dtype=np.int64) if label is None else np.asarray(label, dtype=np.int64)
        self.device = torch.device(device)

    @property
    def n_cells(self) -> int:
        return self.X.shape[0]

    def minibatch(self, idx: np.ndarray, counts: bool = True) -> Minibatch:
        """Dense counts, their non-zeros and log1p for the rows ``idx``; ``counts=False`` gives
        only what the encoders read (log1p, batch, label), with ``x`` and ``nz`` None."""
        sub = self.X[idx]
        dev = self.device
        x = nz = None
        if counts:
            x = torch.from_numpy(sub.toarray()).to(dev)  # scipy's compiled scatter: ~2x faster than numpy's
            rows = np.repeat(np.arange(sub.shape[0], dtype=np.int64), np.diff(sub.indptr))
            nz = SparseCounts(torch.from_numpy(rows).to(dev), torch.from_numpy(sub.indices.astype(np.int64)).to(dev),
                              torch.from_numpy(sub.data.astype(np.float32, copy=True)).to(dev))
        # log1p on the CSR values then densify: ~2.3x cheaper than torch.log1p of the dense block
        log_sub = sp.csr_matrix((np.log1p(sub.data, dtype=np.float32), sub.indices, sub.indptr), shape=sub.shape)
        return Minibatch(
            x=x, nz=nz, log_x=torch.from_numpy(log_sub.toarray()).to(dev),
            batch=torch.from_numpy(self.batch[idx]).to(dev),
            label=torch.from_numpy(self.label[idx]).to(dev), index=idx,
        )

    def iterate(self, batch_size: int, rng: Optional[np.random.Generator] = None, indices=None,
                drop_small_last: bool = False):
        """Minibatches over ``indices`` (all cells by default), shuffled when ``rng`` is given.

        ``drop_small_last`` drops a final minibatch of fewer than 3 cells during training
        (BatchNorm needs more than one cell); shuffling means no cell is left out for long.
        """
        idx = np.arange(self.n_cells) if indices is None else np.asarray(indices)
        if rng is not None:
            idx = idx[rng.permutation(len(idx))]
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            if drop_small_last and len(chunk) < 3 and start > 0:
                break
            yield self.minibatch(chunk)


def library_prior(X: sp.csr_matrix, batch: np.ndarray, n_batch: int):
    """Per-batch mean and variance of log total counts: the prior of l (paper, [29])."""
    log_lib = np.log(np.maximum(np.asarray(X.sum(1)).ravel(), 1.0))
    means = np.zeros(n_batch, dtype=np.float32)
    vars_ = np.ones(n_batch, dtype=np.float32)
    for b in range(n_batch):
        v = log_lib[batch == b]
        if len(v):
            means[b] = v.mean()
            vars_[b] = max(v.var(), 1e-3)
    return means, vars_
