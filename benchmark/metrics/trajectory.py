"""Trajectory metrics (paper, "Harmonizing continuous trajectories", Figure 4c-d).

"We evaluated the extent of batch entropy mixing at different points along the harmonized
developmental trajectory" (20 bins of cells ordered by the reference pseudotime), and beyond the
paper the agreement of a diffusion pseudotime computed on the latent with the true one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._checks import MetricInputError
from .mixing import batch_entropy_per_cell
from .neighbors import NeighborsResult, compute_neighbors


def bin_batch_entropy(latent_or_neighbors, batches, pseudotime, *, n_bins: int = 20, k: int = 50,
                      seed: int = 0) -> pd.DataFrame:
    """Batch entropy of mixing within each of ``n_bins`` pseudotime bins.

    Cells with a pseudotime are ordered by it and cut into ``n_bins`` bins of equal size; each
    bin's value is the mean over its cells of the entropy of the batch mix among their ``k``
    nearest neighbours (from all cells). Cells without a pseudotime (NaN) are not binned.
    Columns: ``bin`` (0 = earliest), ``value``, ``n_cells``, ``pseudotime_mean``.
    """
    per_cell = batch_entropy_per_cell(latent_or_neighbors, batches, k=k, seed=seed)
    t = np.asarray(pseudotime, dtype=float).ravel()
    if len(t) != len(per_cell):
        raise MetricInputError(f"`pseudotime` has {len(t)} values for {len(per_cell)} cells")
    have = np.flatnonzero(np.isfinite(t))
    if len(have) < n_bins:
        raise MetricInputError(f"only {len(have)} cells have a pseudotime; need at least n_bins={n_bins}")
    order = have[np.argsort(t[have], kind="stable")]
    rows = []
    for b, cells in enumerate(np.array_split(order, n_bins)):
        rows.append({"bin": b, "value": float(per_cell[cells].mean()), "n_cells": len(cells),
                     "pseudotime_mean": float(t[cells].mean())})
    return pd.DataFrame(rows)


def diffusion_pseudotime(latent_or_neighbors, root: int, *, k: int = 15, n_comps: int = 15,
                         seed: int = 0) -> np.ndarray:
    """Diffusion pseudotime (Haghverdi et al. 2016) from ``root`` on the latent's kNN graph.

    DPT(i) = distance between cells ``i`` and ``root`` in the multiscale diffusion map that
    leaves out the stationary component, scaled to [0, 1]. Cells in graph components not
    reached from the root get NaN.
    """
    from scipy.sparse.csgraph import connected_components

    from ._diffusion import diffusion_eigen

    if isinstance(latent_or_neighbors, NeighborsResult):
        nn = latent_or_neighbors.subset(min(k, latent_or_neighbors.k))
    else:
        nn = compute_neighbors(latent_or_neighbors, k, seed=seed)
    if not 0 <= root < nn.n_cells:
        raise MetricInputError(f"`root`={root} is not a cell index (0..{nn.n_cells - 1})")
    _, comp = connected_components(nn.connectivities, directed=False)
    reach = comp == comp[root]
    W = nn.connectivities[reach][:, reach]
    evals, evecs = diffusion_eigen(W, n_comps + 1, seed)
    lam = evals[1:]  # drop the stationary component
    M = evecs[:, 1:] * (lam / (1 - lam))
    new_root = int(np.flatnonzero(reach).tolist().index(root))
    d = np.sqrt(((M - M[new_root]) ** 2).sum(axis=1))
    out = np.full(nn.n_cells, np.nan)
    out[reach] = d / d.max() if d.max() > 0 else d
    return out


def pseudotime_correlation(latent_or_neighbors, true_pseudotime, *, root: int | None = None,
                           k: int = 15, method: str = "spearman", seed: int = 0) -> float:
    """Rank correlation between the latent's diffusion pseudotime and the true pseudotime.

    ``root`` defaults to the cell with the smallest true pseudotime. Only cells with a true
    pseudotime and a finite DPT are compared. ``method``: "spearman" or "kendall".
    """
    from scipy.stats import kendalltau, spearmanr

    t = np.asarray(true_pseudotime, dtype=float).ravel()
    have = np.isfinite(t)
    if have.sum() < 3:
        raise MetricInputError("`true_pseudotime` needs at least 3 finite values")
    if root is None:
        root = int(np.flatnonzero(have)[np.argmin(t[have])])
    dpt = diffusion_pseudotime(latent_or_neighbors, root, k=k, seed=seed)
    if len(dpt) != len(t):
        raise MetricInputError(f"`true_pseudotime` has {len(t)} values for {len(dpt)} cells")
    keep = have & np.isfinite(dpt)
    if method == "spearman":
        return float(spearmanr(dpt[keep], t[keep]).statistic)
    if method == "kendall":
        return float(kendalltau(dpt[keep], t[keep]).statistic)
    raise MetricInputError(f"`method` must be 'spearman' or 'kendall', got {method!r}")

