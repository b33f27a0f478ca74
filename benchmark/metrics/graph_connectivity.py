"""Graph connectivity (scIB, Luecken et al. 2022): for each cell type, the share of its cells in
the largest connected component of the kNN graph restricted to that type; mean over types."""
from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import connected_components

from ._checks import as_labels
from .neighbors import NeighborsResult


def graph_connectivity(nn: NeighborsResult, labels) -> float:
    """Mean over labels of (largest strongly connected piece of the label's subgraph) / size."""
    y = as_labels(labels, nn.n_cells, "labels").astype(str)
    graph = nn.distance_graph
    shares = []
    for lab in np.unique(y):
        mask = y == lab
        _, comp = connected_components(graph[mask][:, mask], connection="strong")
        shares.append(np.bincount(comp).max() / mask.sum())
    return float(np.mean(shares))
