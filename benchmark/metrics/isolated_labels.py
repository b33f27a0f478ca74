"""Isolated label scores (scIB, Luecken et al. 2022): how well the labels present in the fewest
batches are kept apart. ASW version as scib-metrics 0.6; F1 version as the original scib
(best F1 of the label against any Leiden cluster, over a resolution grid)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._checks import MetricInputError, as_labels, as_matrix
from .neighbors import NeighborsResult
from .nmi_ari import leiden_clusters
from .silhouette import silhouette_samples


def isolated_label_names(labels, batches, *, iso_threshold: int | None = None) -> np.ndarray:
    """Labels found in at most ``iso_threshold`` batches (default: the minimum over labels)."""
    frame = pd.DataFrame({"label": as_labels(labels).astype(str), "batch": as_labels(batches).astype(str)})
    per_label = frame.drop_duplicates().groupby("label")["batch"].count()
    threshold = per_label.min() if iso_threshold is None else iso_threshold
    return np.asarray(per_label[per_label <= threshold].index)


def isolated_labels(X, labels, batches, *, rescale: bool = True, iso_threshold: int | None = None,
                    samples=None) -> float:
    """Isolated label ASW: mean over isolated labels of their cells' (rescaled) label silhouette.

    ``samples``: per-cell label silhouettes already computed (shared with ``silhouette_label``).
    """
    X = as_matrix(X, "X")
    y = as_labels(labels, X.shape[0], "labels").astype(str)
    iso = isolated_label_names(y, as_labels(batches, X.shape[0], "batches"), iso_threshold=iso_threshold)
    s = silhouette_samples(X, y) if samples is None else np.asarray(samples)
    if rescale:
        s = (s + 1) / 2
    return float(np.mean([s[y == lab].mean() for lab in iso]))


def isolated_label_f1(nn: NeighborsResult, labels, batches, *, iso_threshold: int | None = None,
                      resolutions=tuple(np.round(np.arange(0.1, 2.01, 0.1), 1)), seed: int = 42) -> float:
    """Isolated label F1: per isolated label, the best F1 between "is this label" and "is in
    cluster c" over Leiden clusters at each resolution; mean over isolated labels."""
    from sklearn.metrics import f1_score

    y = as_labels(labels, nn.n_cells, "labels").astype(str)
    iso = isolated_label_names(y, as_labels(batches, nn.n_cells, "batches"), iso_threshold=iso_threshold)
    if len(iso) == 0:
        raise MetricInputError("no isolated label found")
    clusterings = [leiden_clusters(nn.connectivities, r, seed) for r in resolutions]
    scores = []
    for lab in iso:
        truth = y == lab
        best = 0.0
        for pred in clusterings:
            for c in np.unique(pred[truth]):  # a cluster without the label has F1 = 0
                best = max(best, f1_score(truth, pred == c))
        scores.append(best)
    return float(np.mean(scores))
