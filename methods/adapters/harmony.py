"""Harmony (harmonypy) on a PCA of log-normalised expression -> ``embed``.

An optional Python peer (not in the scANVI paper; a widely used baseline since Korsunsky et al.
2019). Harmony iterates soft k-means clustering with batch-diversity penalties and per-cluster
linear corrections of the PCs. Input: PCA (``n_pcs`` components, default ``task.n_latent``) of
log1p(counts per 10k); output: the corrected PCs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..registry import register
from ._peers_common import batch_vector, counts_csr, log_normalize, need_batches, pca


@register(
    name="harmony",
    capabilities=("embed",),
    requires=("harmonypy",),
    defaults={"n_pcs": None, "theta": None, "max_iter_harmony": 10},
    citation="Korsunsky I, et al. Fast, sensitive and accurate integration of single-cell data with Harmony. Nat Methods 2019",
    url="https://github.com/slowkow/harmonypy",
    description="Harmony (harmonypy) on PCA of log-normalised data",
)
def harmony(adata, task):
    """harmonypy on PCA of log1p(CP10k): embed = Harmony-corrected PCs."""
    import harmonypy

    batches = batch_vector(adata, task.batch_key)
    need_batches(batches, task.batch_key, "harmony")
    n_pcs = int(task.params.get("n_pcs") or task.n_latent)
    pcs = pca(log_normalize(counts_csr(adata)), n_pcs, seed=task.seed)
    ho = harmonypy.run_harmony(
        pcs, pd.DataFrame({"batch": batches}), "batch", theta=task.params.get("theta"),
        max_iter_harmony=int(task.params.get("max_iter_harmony", 10)), verbose=False,
        random_state=int(task.seed), ncores=int(task.n_threads or 1),
    )
    z = np.asarray(ho.Z_corr, dtype=np.float64)
    if z.shape != pcs.shape:  # older harmonypy returns PCs x cells
        z = z.T
    return {"embedding": np.ascontiguousarray(z), "extras": {"n_pcs": int(pcs.shape[1])}}
