"""Scanorama on log-normalised expression -> ``embed`` and ``correct``.

An optional Python peer (Hie et al. 2019; a panorama-stitching integration by mutual nearest
neighbours across all batch pairs). Input per batch: log1p(counts per 10k); Scanorama
L2-normalises cells itself. ``embed`` = its joint low-dimensional space (``task.n_latent``
dimensions); ``correct`` = its corrected expression, columns put back in ``var_names`` order.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..base import MethodInputError
from ..registry import register
from ._peers_common import batch_vector, counts_csr, log_normalize, need_batches


@register(
    name="scanorama",
    capabilities=("embed", "correct"),
    requires=("scanorama",),
    defaults={"knn": 20, "sigma": 15, "alpha": 0.1, "approx": True},
    citation="Hie B, Bryson B, Berger B. Efficient integration of heterogeneous single-cell transcriptomes using Scanorama. Nat Biotechnol 2019",
    url="https://github.com/brianhie/scanorama",
    description="Scanorama panoramic integration (embed + corrected expression)",
)
def scanorama(adata, task):
    """Scanorama ``correct(return_dimred=True)`` per batch, reassembled in obs order."""
    import scanorama as sc_

    batches = batch_vector(adata, task.batch_key)
    need_batches(batches, task.batch_key, "scanorama")
    logx = log_normalize(counts_csr(adata))
    names = list(dict.fromkeys(batches))
    idx = [np.flatnonzero(batches == b) for b in names]
    genes = np.asarray(adata.var_names.astype(str))
    knn = int(task.params.get("knn", 20))
    smallest = min(len(i) for i in idx)
    if smallest < 2:
        raise MethodInputError(f"scanorama: a batch of obs[{task.batch_key!r}] has {smallest} cell; each needs >= 2")
    dimred = int(min(task.n_latent, smallest - 1, len(genes) - 1))
    dimreds, corrected, genes_out = sc_.correct(
        [logx[i] for i in idx], [genes.copy() for _ in idx], return_dimred=True, dimred=dimred,
        knn=min(knn, smallest - 1), sigma=float(task.params.get("sigma", 15)),
        alpha=float(task.params.get("alpha", 0.1)), approx=bool(task.params.get("approx", True)),
        verbose=0, seed=int(task.seed),
    )
    emb = np.zeros((adata.n_obs, dimreds[0].shape[1]))
    for i, d in zip(idx, dimreds):
        emb[i] = d
    out = {"embedding": emb}
    if "correct" in (task.outputs or ()):
        order = {g: j for j, g in enumerate(np.asarray(genes_out).astype(str))}
        cols = np.array([order[g] for g in genes])
        corr = np.zeros((adata.n_obs, len(genes)))
        for i, c in zip(idx, corrected):
            c = c.toarray() if sp.issparse(c) else np.asarray(c)
            corr[i] = c[:, cols]
        out["corrected"] = corr
    return out
