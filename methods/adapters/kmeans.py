"""k-means seed-labelling baseline: k-means on an embedding, each cluster labelled by the
majority of its labelled cells (paper, "Cell type annotation": "clustering the cells and taking
a majority vote inside each cluster"; k-means on the scVI / Seurat latent gave 74% / 72%).

Embedding as for ``knn_classifier`` (``params["embedding_key"]`` or PCA);
``params["n_clusters"]`` defaults to the number of visible classes.
"""
from __future__ import annotations

from ..registry import register
from .knn import embedding_for, visible_labels


@register(
    name="kmeans_labels",
    capabilities=("classify",),
    requires=("sklearn",),
    uses_labels=True,
    defaults={"n_clusters": None, "embedding_key": None},
    citation="Xu C, et al. Probabilistic harmonization and annotation of single-cell transcriptomics "
             "data with deep generative models. Mol Syst Biol 2021 (k-means baseline)",
    url="https://scikit-learn.org/stable/modules/clustering.html#k-means",
    description="k-means clusters labelled by the majority of their labelled cells",
)
def kmeans_labels(adata, task):
    """Label transfer by k-means cluster majority vote."""
    import pandas as pd

    from ..native.baselines import KMeansLabelTransfer

    Z, space = embedding_for(adata, task)
    model = KMeansLabelTransfer(n_clusters=task.params.get("n_clusters"), seed=task.seed)
    model.fit(Z, visible_labels(adata, task))
    P = model.predict_proba(Z)
    proba = pd.DataFrame(P, index=adata.obs_names, columns=[str(c) for c in model.classes_])
    return {"labels": model.classes_[P.argmax(1)].astype(object), "probabilities": proba,
            "extras": {"n_clusters": int(model.kmeans_.n_clusters), "space": space}}
