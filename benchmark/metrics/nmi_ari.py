"""NMI and ARI between cell-type labels and a clustering of the embedding (scIB), by Leiden on
the connectivity graph with the resolution chosen to maximise NMI, or k-means with k = number of
labels (scib-metrics 0.6 defaults)."""
from __future__ import annotations

import random

import numpy as np

from ._checks import as_labels, as_matrix
from .neighbors import NeighborsResult

#: scib-metrics' resolution grid: 0.2, 0.4, ..., 2.0
LEIDEN_RESOLUTIONS = tuple(2 * x / 10 for x in range(1, 11))


def _scores(labels, pred) -> tuple[float, float]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return (float(normalized_mutual_info_score(labels, pred, average_method="arithmetic")),
            float(adjusted_rand_score(labels, pred)))


def leiden_clusters(connectivities, resolution: float, seed: int = 42) -> np.ndarray:
    """Leiden (modularity) clusters of a weighted graph with igraph, seeded.

    The graph is built as scanpy does (directed adjacency made undirected keeping both edges),
    so the clusters match scib-metrics for the same seed.
    """
    import igraph

    g = igraph.Graph.Weighted_Adjacency(connectivities, mode="directed")
    g.to_undirected(mode="each")
    igraph.set_random_number_generator(random.Random(seed))
    try:
        part = g.community_leiden(objective_function="modularity", weights="weight", resolution=resolution)
    finally:
        igraph.set_random_number_generator(random)  # leave igraph's global RNG as we found it
    return np.asarray(part.membership)


def nmi_ari_cluster_labels_leiden(nn: NeighborsResult, labels, *, optimize_resolution: bool = True,
                                  resolution: float = 1.0, seed: int = 42) -> dict:
    """{"nmi", "ari"} of Leiden clusters vs labels; with ``optimize_resolution`` the resolution
    of the grid :data:`LEIDEN_RESOLUTIONS` with the best NMI is kept (ARI reported at it)."""
    y = as_labels(labels, nn.n_cells, "labels").astype(str)
    conn = nn.connectivities
    grid = LEIDEN_RESOLUTIONS if optimize_resolution else (resolution,)
    results = [_scores(y, leiden_clusters(conn, r, seed)) for r in grid]
    nmi, ari = results[int(np.argmax([r[0] for r in results]))]
    return {"nmi": nmi, "ari": ari}


def nmi_ari_cluster_labels_kmeans(X, labels, *, seed: int = 0, n_init: int = 10) -> dict:
    """{"nmi", "ari"} of k-means (k = number of labels, scikit-learn, seeded) vs labels."""
    from sklearn.cluster import KMeans

    X = as_matrix(X, "X")
    y = as_labels(labels, X.shape[0], "labels").astype(str)
    pred = KMeans(n_clusters=len(np.unique(y)), n_init=n_init, random_state=seed).fit_predict(X)
    nmi, ari = _scores(y, pred)
    return {"nmi": nmi, "ari": ari}
