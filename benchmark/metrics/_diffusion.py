"""Diffusion maps on a connectivity graph (Coifman & Lafon 2006; Haghverdi et al. 2016), as
scanpy and scib-metrics compute them; used by kBET per label and diffusion pseudotime."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh


def symmetric_transitions(connectivities: sp.spmatrix) -> sp.csr_matrix:
    """Density-normalised symmetric transition matrix Z^-1/2 K Z^-1/2 with K = Q^-1 W Q^-1."""
    W = sp.csr_matrix(connectivities, dtype=np.float64)
    q = np.asarray(W.sum(axis=0)).ravel()  # sampling density estimate per cell
    Q = sp.diags(1.0 / q)
    K = Q @ W @ Q
    z = np.sqrt(np.asarray(K.sum(axis=0)).ravel())
    Z = sp.diags(1.0 / z)
    return (Z @ K @ Z).tocsr()


def diffusion_eigen(connectivities: sp.spmatrix, n_comps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n_comps`` eigenpairs (largest first) of the symmetric transition matrix."""
    T = symmetric_transitions(connectivities)
    n = T.shape[0]
    n_comps = min(n - 1, n_comps)
    v0 = np.random.default_rng(seed).uniform(-1, 1, n)  # seeded ARPACK start: same numbers every run
    evals, evecs = eigsh(T, k=n_comps, which="LM", v0=v0)
    order = np.argsort(evals)[::-1]
    return evals[order], evecs[:, order]


def diffusion_embedding(connectivities: sp.spmatrix, n_comps: int = 100, seed: int = 0) -> np.ndarray:
    """Multiscale diffusion map: eigenvectors scaled by lambda / (1 - lambda) (t integrated out).

    Euclidean distance in this embedding approximates the diffusion distance (scib-metrics'
    ``diffusion_nn`` uses the same construction, in float32).
    """
    evals, evecs = diffusion_eigen(connectivities, n_comps, seed)
    evals = evals.astype(np.float32) + np.float32(1e-8)
    evecs = evecs.astype(np.float32)
    with np.errstate(divide="ignore"):  # lambda == 1 is kept as is, like scib-metrics
        scaled = np.where(evals == 1, evals, evals / (1 - evals))
    return evecs * scaled
