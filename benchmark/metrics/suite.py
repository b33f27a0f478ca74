"""The scIB metric set on one embedding, with one neighbour graph (what scib-metrics'
``Benchmarker`` computes by default, plus opt-in extras)."""
from __future__ import annotations

import numpy as np

from ._checks import MetricInputError, as_labels, as_matrix
from .graph_connectivity import graph_connectivity
from .isolated_labels import isolated_label_f1, isolated_labels
from .kbet import kbet_per_label
from .lisi import clisi_knn, ilisi_knn
from .neighbors import NeighborsResult, compute_neighbors
from .nmi_ari import nmi_ari_cluster_labels_kmeans, nmi_ari_cluster_labels_leiden
from .pcr import pcr_comparison
from .silhouette import bras, silhouette_batch, silhouette_label, silhouette_samples

#: scib-metrics' Benchmarker graph sizes, counted with the cell itself: 15, 50 and 90 columns
GRAPH_COLUMNS = {"small": 15, "kbet": 50, "lisi": 90}

DEFAULT_METRICS = ("isolated_labels", "nmi_ari_cluster_labels_kmeans", "silhouette_label", "clisi_knn",
                   "bras", "ilisi_knn", "kbet_per_label", "graph_connectivity", "pcr_comparison")
EXTRA_METRICS = ("nmi_ari_cluster_labels_leiden", "silhouette_batch", "isolated_label_f1")


def cell_cycle_entry(embedding, batches, expression, gene_names, *, organism: str = "auto", seed: int = 0) -> dict:
    """{"cell_cycle_conservation": value} when ``gene_names`` hold at least
    :data:`~.cell_cycle_genes.MIN_GENES_PER_PHASE` S and G2/M genes of the Tirosh et al. lists,
    else {} with a warning saying how many were found (e.g. HVG-only input or Ensembl ids)."""
    import warnings

    from .cell_cycle_genes import MIN_GENES_PER_PHASE, present_cell_cycle_genes
    from .conservation import cell_cycle_conservation, cell_cycle_scores

    if gene_names is None or len(gene_names) != expression.shape[1]:
        raise MetricInputError("`gene_names` must name each column of `expression` (needed for the cell-cycle genes)")
    org, s_genes, g2m_genes = present_cell_cycle_genes(gene_names, organism)
    if min(len(s_genes), len(g2m_genes)) < MIN_GENES_PER_PHASE:
        warnings.warn(f"cell_cycle_conservation skipped: {len(s_genes)} S and {len(g2m_genes)} G2/M genes of the "
                      f"{org} Tirosh et al. lists in `expression`, fewer than {MIN_GENES_PER_PHASE} each; pass the "
                      "unintegrated log-normalised expression of all genes, named by symbol")
        return {}
    cc = cell_cycle_scores(expression, gene_names, batches, organism=org, seed=seed)
    return {"cell_cycle_conservation": cell_cycle_conservation(expression, embedding, cc, batches)}


def scib_suite(embedding, batches, labels, X_pre, *, neighbors: NeighborsResult | None = None,
               metrics=DEFAULT_METRICS, seed: int = 0, expression=None, gene_names=None,
               organism: str = "auto") -> dict:
    """Scores {metric name: value} of the scIB set on ``embedding``.

    ``X_pre``: the unintegrated embedding (e.g. PCA of the log-normalised data) for PCR.
    ``neighbors``: a graph of ``embedding`` with at least 89 neighbours (computed if absent).
    NMI/ARI metrics add ``<name>_nmi`` and ``<name>_ari`` entries.
    ``expression`` + ``gene_names`` (unintegrated log-normalised cells x genes, symbols): adds
    ``cell_cycle_conservation`` (scib 1.x, not in scib-metrics) when enough cell-cycle genes are
    present (see :func:`cell_cycle_entry`); ``embedding`` may be a latent or corrected expression.
    """
    X = as_matrix(embedding, "embedding")
    b = as_labels(batches, X.shape[0], "batches")
    y = as_labels(labels, X.shape[0], "labels")
    nn = neighbors if neighbors is not None else compute_neighbors(X, GRAPH_COLUMNS["lisi"] - 1, seed=seed)
    small = nn.subset(GRAPH_COLUMNS["small"] - 1)
    shared = {}

    def label_silhouettes():  # computed once for silhouette_label and isolated_labels
        if "s" not in shared:
            shared["s"] = silhouette_samples(X, y)
        return shared["s"]

    calls = {
        "isolated_labels": lambda: isolated_labels(X, y, b, samples=label_silhouettes()),
        "nmi_ari_cluster_labels_kmeans": lambda: nmi_ari_cluster_labels_kmeans(X, y, seed=seed),
        "nmi_ari_cluster_labels_leiden": lambda: nmi_ari_cluster_labels_leiden(small, y, seed=42 + seed),
        "silhouette_label": lambda: silhouette_label(X, y, samples=label_silhouettes()),
        "clisi_knn": lambda: clisi_knn(nn.subset(GRAPH_COLUMNS["lisi"] - 1), y),
        "bras": lambda: bras(X, y, b),
        "silhouette_batch": lambda: silhouette_batch(X, y, b),
        "ilisi_knn": lambda: ilisi_knn(nn.subset(GRAPH_COLUMNS["lisi"] - 1), b),
        "kbet_per_label": lambda: kbet_per_label(nn.subset(GRAPH_COLUMNS["kbet"] - 1), b, y, seed=seed),
        "graph_connectivity": lambda: graph_connectivity(small, y),
        "pcr_comparison": lambda: pcr_comparison(X_pre, X, b, categorical=True),
        "isolated_label_f1": lambda: isolated_label_f1(small, y, b, seed=42 + seed),
    }
    out = {}
    if expression is not None:
        if expression.shape[0] != X.shape[0]:
            raise MetricInputError(f"`expression` has {expression.shape[0]} cells, `embedding` {X.shape[0]}; "
                                   "pass the same cells in the same order")
        out.update(cell_cycle_entry(X, b, expression, gene_names, organism=organism, seed=seed))
    for name in metrics:
        value = calls[name]()
        if isinstance(value, dict):
            out.update({f"{name}_{k}": float(v) for k, v in value.items()})
        else:
            out[name] = float(value) if value is not None else np.nan
    return out
