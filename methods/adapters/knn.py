"""kNN classifier baseline: majority vote of the k nearest labelled cells in an embedding
(paper, "Cell type annotation": "taking the majority vote of the k-nearest neighbors around
each unannotated cell (k = 10)").

The embedding is ``adata.obsm[params["embedding_key"]]`` when given (e.g. another method's
latent placed there by the runner), else the unintegrated PCA of the ``pca`` adapter.
``params["k"]``: an int, "paper" (10) or "cv" (cross-validated on the labelled cells).
"""
from __future__ import annotations

import numpy as np

from ..base import MethodInputError
from ..registry import register


def embedding_for(adata, task) -> tuple[np.ndarray, str]:
    """The space to classify in: obsm[embedding_key] or a fresh PCA; and its name."""
    key = task.params.get("embedding_key")
    if key:
        if key not in adata.obsm:
            raise MethodInputError(f"obsm[{key!r}] (params['embedding_key']) is missing; "
                                   f"available: {list(adata.obsm)}")
        return np.asarray(adata.obsm[key], dtype=np.float64), key
    from .pca import pca_embedding

    Z, _ = pca_embedding(adata, task.params.get("n_pcs", task.n_latent), genes=task.params.get("genes", "seurat_v3"),
                         n_top=int(task.params.get("n_top_genes", 2000)), batch_key=task.batch_key, seed=task.seed)
    return Z, "pca"


def visible_labels(adata, task) -> np.ndarray:
    if task.label_key not in adata.obs:
        raise MethodInputError(f"obs[{task.label_key!r}] (task.label_key) is missing; it holds the visible labels")
    return adata.obs[task.label_key].astype(object).to_numpy()


@register(
    name="knn_classifier",
    capabilities=("classify",),
    requires=("sklearn",),
    uses_labels=True,
    defaults={"k": 10, "embedding_key": None},
    citation="Xu C, et al. Probabilistic harmonization and annotation of single-cell transcriptomics "
             "data with deep generative models. Mol Syst Biol 2021 (kNN baseline)",
    url="https://scikit-learn.org/stable/modules/neighbors.html",
    description="kNN majority vote of labelled cells on an embedding (PCA by default)",
)
def knn_classifier(adata, task):
    """Label transfer by kNN majority vote."""
    import pandas as pd

    from ..native.baselines import KNNLabelTransfer

    Z, space = embedding_for(adata, task)
    model = KNNLabelTransfer(k=task.params.get("k", 10), seed=task.seed).fit(Z, visible_labels(adata, task))
    P = model.predict_proba(Z)
    proba = pd.DataFrame(P, index=adata.obs_names, columns=[str(c) for c in model.classes_])
    return {"labels": model.classes_[P.argmax(1)].astype(object), "probabilities": proba,
            "extras": {"k": model.k_, "space": space, "n_labelled": model.n_labelled_}}
