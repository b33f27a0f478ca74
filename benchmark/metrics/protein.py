"""Consistency of the mRNA latent with measured proteins (paper, "Cell type annotation" with
PBMC-CITE and Supplementary Figure 11).

"We first computed the average discrepancy (sum of squared differences) between the protein
measurements in each cell and the average over its k-nearest neighbors. As a second measure we
computed for each PBMC-CITE cell the overlap between its k-nearest PBMC-CITE neighbors in the
harmonized mRNA-based space and in the protein space." Pass the rows of the cells that have
proteins (and normalise the proteins, e.g. CLR, beforehand).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._checks import MetricInputError, as_matrix
from .neighbors import NeighborsResult, compute_neighbors
from .purity import jaccard_rows


def _protein_matrix(protein, n: int) -> np.ndarray:
    P = as_matrix(protein.to_numpy() if isinstance(protein, pd.DataFrame) else protein, "protein")
    if P.shape[0] != n:
        raise MetricInputError(f"`protein` has {P.shape[0]} rows but the latent has {n} cells; pass the same cells")
    return P


def _nn(latent_or_neighbors, k: int) -> NeighborsResult:
    if isinstance(latent_or_neighbors, NeighborsResult):
        return latent_or_neighbors.subset(k)
    return compute_neighbors(latent_or_neighbors, k)


def protein_knn_error(latent_or_neighbors, protein, *, k: int = 50) -> float:
    """Mean over cells of sum_p (protein_p(cell) - mean of protein_p over its k latent neighbours)^2.

    Lower = the latent neighbourhoods agree better with the proteins.
    """
    nn = _nn(latent_or_neighbors, k)
    P = _protein_matrix(protein, nn.n_cells)
    smoothed = P[nn.others(k)].mean(axis=1)
    return float(((P - smoothed) ** 2).sum(axis=1).mean())


def protein_knn_overlap(latent_or_neighbors, protein, *, k: int = 50) -> float:
    """Mean Jaccard overlap between each cell's k neighbours in the latent and in protein space."""
    nn = _nn(latent_or_neighbors, k)
    P = _protein_matrix(protein, nn.n_cells)
    return float(jaccard_rows(nn.others(k), compute_neighbors(P, k).others(k)).mean())
