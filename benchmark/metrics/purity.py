"""k-nearest-neighbours purity (paper, Online Methods "k-nearest neighbors purity").

"Compute two similarity matrices for cells from the first batch, one from the latent space
obtained with only cells from the first batch and the other from the latent space obtained using
both batches of cells. [...] Take the average ratio of the intersection of the k-nearest
neighbors graph from each similarity matrix over their union. Compute the same statistic for
cells from the other batch and report the average." Self is left out of both neighbour sets.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from ._checks import MetricInputError, as_labels, as_matrix
from .neighbors import compute_neighbors


def jaccard_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Jaccard index |A & B| / |A | B| of two (n, k) arrays of distinct indices per row."""
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    inter = (both[:, 1:] == both[:, :-1]).sum(axis=1)  # each shared index appears twice, adjacent
    union = a.shape[1] + b.shape[1] - inter
    return inter / union


def knn_overlap(X_a, X_b, k: int) -> np.ndarray:
    """Per-cell Jaccard overlap of the k nearest neighbours of the same cells in two spaces."""
    a = compute_neighbors(X_a, k).others(k)
    b = compute_neighbors(X_b, k).others(k)
    return jaccard_rows(a, b)


def knn_purity_per_batch(latent, batches, batch_latents: Mapping, *, k: int = 50) -> dict:
    """{batch: mean Jaccard overlap} between each batch's own latent and the joint latent.

    ``latent``: joint embedding (cells x dims). ``batch_latents``: {batch: embedding of that
    batch's cells alone, rows in the order they appear in ``latent``} (the paper uses a Seurat
    PCA or an scVI fit on each batch alone). In the joint latent a cell's neighbours are sought
    among the cells of its own batch, as the paper's "two similarity matrices for cells from the
    first batch".
    """
    return {b: v[k] for b, v in _purity_by_batch(latent, batches, batch_latents, [k]).items()}


def _purity_by_batch(latent, batches, batch_latents: Mapping, ks) -> dict:
    """{batch: {k: mean Jaccard overlap}} for every k in ``ks`` (graphs computed once per batch)."""
    latent = as_matrix(latent, "latent")
    b = as_labels(batches, latent.shape[0], "batches")
    out = {}
    for batch in pd.unique(b):
        if batch not in batch_latents:
            raise MetricInputError(f"`batch_latents` has no entry for batch {batch!r}; "
                                   "pass the embedding of each batch fitted alone")
        mask = b == batch
        own = as_matrix(batch_latents[batch], f"batch_latents[{batch!r}]")
        if own.shape[0] != mask.sum():
            raise MetricInputError(f"batch_latents[{batch!r}] has {own.shape[0]} rows but batch {batch!r} "
                                   f"has {int(mask.sum())} cells")
        kmax = max(ks)
        if kmax >= mask.sum():
            raise MetricInputError(f"k={kmax} needs more than the {int(mask.sum())} cells of batch {batch!r}; "
                                   "lower k")
        own_nn = compute_neighbors(own, kmax)
        joint_nn = compute_neighbors(latent[mask], kmax)  # neighbours among this batch's cells only
        out[batch] = {k: float(jaccard_rows(own_nn.others(k), joint_nn.others(k)).mean()) for k in ks}
    return out


def knn_purity(latent, batches, batch_latents: Mapping, *, k: int = 50) -> float:
    """kNN purity: mean over batches of the per-batch Jaccard overlap (paper, Online Methods)."""
    return float(np.mean(list(knn_purity_per_batch(latent, batches, batch_latents, k=k).values())))


def knn_purity_curve(latent, batches, batch_latents: Mapping, *, ks=(10, 20, 50, 100, 200, 300, 400, 500)) -> pd.DataFrame:
    """kNN purity over k (columns ``k``, ``value``); k not below the smallest batch are dropped."""
    b = as_labels(batches, np.asarray(latent).shape[0], "batches")
    smallest = pd.Series(b).value_counts().min()
    usable = sorted(int(k) for k in ks if k < smallest)
    if not usable:
        raise MetricInputError(f"every k in {list(ks)} needs more than the {smallest} cells of the smallest batch")
    per_batch = _purity_by_batch(latent, b, batch_latents, usable)
    return pd.DataFrame([{"k": k, "value": float(np.mean([v[k] for v in per_batch.values()]))} for k in usable])
