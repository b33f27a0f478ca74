"""Batch entropy of mixing (paper, Online Methods "Batch Entropy Mixing").

"Fix a similarity matrix for the cells and take U to be a uniform random variable on the
population of cells. Take B_U the empirical frequencies for the 50 nearest neighbors of cell U
being a in batch b. Report the entropy of this categorical variable and average over T = 100
values of U." scVI's implementation repeats this over 50 pools of 100 cells drawn with
replacement and uses the natural log; we do the same and allow any number of batches
(maximum = log(n_batches) when every neighbourhood holds the batches in equal shares).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._checks import MetricInputError, as_labels, codes
from .neighbors import NeighborsResult, compute_neighbors

#: the paper's range of neighbourhood sizes, "from a high resolution (k = 10) to a coarse (k = 500)"
DEFAULT_KS = (10, 20, 50, 100, 200, 300, 400, 500)


def _graph(latent_or_neighbors, k: int, seed: int = 0) -> NeighborsResult:
    """A neighbour graph holding at least ``k`` neighbours (computed if a latent was given)."""
    if isinstance(latent_or_neighbors, NeighborsResult):
        return latent_or_neighbors.subset(k)
    return compute_neighbors(latent_or_neighbors, k, seed=seed)


def neighbour_entropy(neighbour_codes: np.ndarray, n_categories: int) -> np.ndarray:
    """Per-row entropy (natural log) of the categories found among each row's neighbours."""
    n, k = neighbour_codes.shape
    counts = np.zeros((n, n_categories))
    np.add.at(counts, (np.repeat(np.arange(n), k), neighbour_codes.ravel()), 1.0)
    p = counts / k
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1)


def batch_entropy_per_cell(latent_or_neighbors, batches, *, k: int = 50, seed: int = 0) -> np.ndarray:
    """Entropy of the batch mix among each cell's ``k`` nearest other cells (one value per cell)."""
    nn = _graph(latent_or_neighbors, k, seed)
    b = as_labels(batches, nn.n_cells, "batches")
    code, cats = codes(b)
    return neighbour_entropy(code[nn.others(k)], len(cats))


def batch_entropy_mixing(latent_or_neighbors, batches, *, k: int = 50, n_pools: int = 50,
                         n_samples: int = 100, seed: int = 0, cells=None) -> float:
    """Batch entropy of mixing at neighbourhood size ``k`` (paper, Online Methods).

    ``latent_or_neighbors``: an embedding (cells x dims) or a :class:`NeighborsResult`.
    ``cells``: optional boolean mask / indices restricting which cells U is drawn from (e.g. one
    cell type, Figure 3g-h); their neighbours still come from all cells.
    Returns the mean over ``n_pools`` pools of ``n_samples`` cells drawn with replacement.
    Higher = better mixed; 0 = batches fully separated; log(n_batches) at most.
    """
    per_cell = batch_entropy_per_cell(latent_or_neighbors, batches, k=k, seed=seed)
    pool = np.arange(len(per_cell)) if cells is None else _cell_indices(cells, len(per_cell))
    if len(pool) == 0:
        raise MetricInputError("`cells` selects no cell; pass a non-empty mask or index list")
    rng = np.random.default_rng(seed)
    draws = rng.choice(pool, size=(n_pools, n_samples), replace=True)
    return float(per_cell[draws].mean(axis=1).mean())


def batch_entropy_mixing_curve(latent_or_neighbors, batches, *, ks=DEFAULT_KS, n_pools: int = 50,
                               n_samples: int = 100, seed: int = 0, cells=None) -> pd.DataFrame:
    """Batch entropy of mixing over the paper's range of k (one graph, computed once).

    Values of ``k`` that need more cells than there are are dropped (the frame says which k
    were scored). Returns a frame with columns ``k`` and ``value``.
    """
    n = latent_or_neighbors.n_cells if isinstance(latent_or_neighbors, NeighborsResult) \
        else np.asarray(latent_or_neighbors).shape[0]
    usable = sorted(int(k) for k in ks if k < n)
    if not usable:
        raise MetricInputError(f"every k in {list(ks)} needs more than the {n} cells given; pass smaller `ks`")
    nn = _graph(latent_or_neighbors, max(usable), seed)
    rows = [{"k": k, "value": batch_entropy_mixing(nn, batches, k=k, n_pools=n_pools, n_samples=n_samples,
                                                   seed=seed, cells=cells)} for k in usable]
    return pd.DataFrame(rows)


def _cell_indices(cells, n: int) -> np.ndarray:
    cells = np.asarray(cells)
    if cells.dtype == bool:
        if len(cells) != n:
            raise MetricInputError(f"`cells` mask has {len(cells)} entries for {n} cells")
        return np.flatnonzero(cells)
    return cells.astype(np.int64)
