"""Clustering scores over k for k-means on a latent (paper, "Cell type annotation" with seed
labels: "using k-means clustering on the scVI and Seurat Alignment latent space ...")."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._checks import MetricInputError, as_labels, as_matrix, is_missing


def kmeans_clustering_scores(latent, labels, *, ks=(2, 4, 6, 8, 10, 15, 20), seed: int = 0,
                             silhouette_sample: int = 5000) -> pd.DataFrame:
    """ARI, NMI (against ``labels``) and silhouette (of the clusters) of k-means for each k.

    Cells with a missing label are clustered but left out of ARI/NMI. The silhouette uses at
    most ``silhouette_sample`` cells (seeded) so large inputs stay fast. Columns: ``k``,
    ``ari``, ``nmi``, ``silhouette``.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

    X = as_matrix(latent)
    y = as_labels(labels, X.shape[0], "labels", allow_missing=True)
    known = ~is_missing(y)
    rows = []
    for k in ks:
        if k < 2 or k >= X.shape[0]:
            raise MetricInputError(f"k-means needs 2 <= k < n_cells ({X.shape[0]}), got k={k}")
        pred = KMeans(n_clusters=int(k), n_init=10, random_state=seed).fit_predict(X)
        sample = min(silhouette_sample, X.shape[0])
        rows.append({
            "k": int(k),
            "ari": float(adjusted_rand_score(y[known].astype(str), pred[known])),
            "nmi": float(normalized_mutual_info_score(y[known].astype(str), pred[known])),
            "silhouette": float(silhouette_score(X, pred, sample_size=sample, random_state=seed))
            if len(np.unique(pred)) > 1 else np.nan,
        })
    return pd.DataFrame(rows)
