"""kBET (Büttner et al. 2019, Nat. Methods 16:43) as scIB / scib-metrics 0.6 compute it.

Each cell's neighbourhood (self included, as in scib-metrics) is tested with a chi-square test of
its batch counts against the global batch frequencies; the score is the fraction of cells whose
test is not rejected at ``alpha``. ``kbet_per_label`` runs it within each cell type on diffusion
neighbours of that type's subgraph (so every method gets the same neighbourhood size) and
averages over types. Pure numpy/scipy: no JIT on first use.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import connected_components
from scipy.special import gammainc

from ._checks import MetricInputError, as_labels, codes
from ._diffusion import diffusion_embedding
from .neighbors import NeighborsResult, compute_neighbors


def kbet_pvalues(neighbour_batches: np.ndarray, batches: np.ndarray, n_batches: int) -> np.ndarray:
    """Chi-square p-value of each row's batch counts against the overall batch frequencies."""
    n, m = neighbour_batches.shape
    expected = np.bincount(batches, minlength=n_batches) / len(batches) * m
    observed = np.zeros((n, n_batches))
    np.add.at(observed, (np.repeat(np.arange(n), m), neighbour_batches.ravel()), 1.0)
    stat = ((observed - expected) ** 2 / expected).sum(1)
    return 1.0 - gammainc((n_batches - 1) / 2.0, stat / 2.0)  # chi2 survival, as scib-metrics


def kbet(nn: NeighborsResult, batches, *, alpha: float = 0.05) -> float:
    """kBET acceptance rate on a neighbour graph (higher = better mixed)."""
    code, cats = codes(as_labels(batches, nn.n_cells, "batches"))
    if len(cats) < 2:
        raise MetricInputError("kBET needs at least two batches in `batches`")
    p = kbet_pvalues(code[nn.indices], code, len(cats))
    return float((p >= alpha).mean())


def _kbet_on_diffusion(conn, batches_sub, k0: int, n_comps: int, alpha: float, seed: int) -> float:
    emb = diffusion_embedding(conn, n_comps=min(n_comps, conn.shape[0] - 1), seed=seed)
    return kbet(compute_neighbors(emb, k0, method="exact"), batches_sub, alpha=alpha)


def kbet_per_label(nn: NeighborsResult, batches, labels, *, alpha: float = 0.05, diffusion_n_comps: int = 100,
                   seed: int = 0, return_df: bool = False):
    """kBET per cell type, averaged (scIB; scib-metrics ``kbet_per_label``).

    Per label: skipped (NaN) with < 10 cells or one batch; k0 = clip(mean cells per batch / 4,
    10, 70); neighbours from the diffusion map of the label's connectivity subgraph (exact search
    where scib-metrics uses pynndescent); graph pieces smaller than 3 k0 are dropped, and if they
    hold more than a quarter of the cells the label scores 0.
    """
    b = as_labels(batches, nn.n_cells, "batches")
    y = as_labels(labels, nn.n_cells, "labels").astype(str)
    code, _ = codes(b)
    conn = nn.connectivities
    rows = []
    for label in np.unique(y):
        mask = y == label
        n_obs = int(mask.sum())
        sub_b = code[mask]
        score = np.nan
        if n_obs >= 10 and len(np.unique(sub_b)) > 1:
            k0 = int(min(70, max(10, np.floor(np.mean(pd.Series(sub_b).value_counts()) / 4))))
            sub = conn[mask][:, mask].tocsr()
            n_comp, comp = connected_components(sub, connection="strong")
            try:
                if n_comp == 1:
                    score = _kbet_on_diffusion(sub, sub_b, k0, diffusion_n_comps, alpha, seed)
                else:
                    sizes = pd.Series(comp).value_counts()
                    keep = np.flatnonzero(np.isin(comp, sizes[sizes >= 3 * k0].index))
                    if len(keep) / len(comp) >= 0.75:
                        score = _kbet_on_diffusion(sub[keep][:, keep], sub_b[keep], k0, diffusion_n_comps, alpha, seed)
                    else:
                        score = 0.0  # too fragmented: 100% rejection, as scIB
            except (ValueError, MetricInputError):
                score = 0.0  # diffusion map or test impossible: scIB counts it as rejection
        rows.append({"cell_type": label, "kbet": score})
    df = pd.DataFrame(rows)
    final = float(np.nanmean(df["kbet"])) if df["kbet"].notna().any() else np.nan
    return (final, df) if return_df else final
