"""Metrics: pure functions on arrays, one per metric, a file per family (DESIGN.md).

The paper's metrics (mixing, purity, classification, protein, trajectory, de, clustering) and
the scIB set (silhouette, lisi, kbet, nmi_ari, isolated_labels, graph_connectivity, pcr,
conservation), all reusing one neighbour graph from :func:`neighbors.compute_neighbors`.
:data:`METRICS` tells reports, per metric name (= the function name used in result rows),
whether higher is better and which family it belongs to.
"""
from ._checks import MetricInputError
from .aggregate import aggregate_scores, scale_by_controls
from .classification import (accuracy, confusion, label_counts, max_posterior, per_class_accuracy,
                             weighted_accuracy)
from .clustering import kmeans_clustering_scores
from .conservation import (cell_cycle_conservation, cell_cycle_scores, gene_set_score, hvg_overlap,
                           trajectory_conservation)
from .de import auroc, kendall_tau
from .graph_connectivity import graph_connectivity
from .isolated_labels import isolated_label_f1, isolated_label_names, isolated_labels
from .kbet import kbet, kbet_per_label
from .lisi import clisi_knn, ilisi_knn, lisi_per_cell
from .mixing import batch_entropy_mixing, batch_entropy_mixing_curve, batch_entropy_per_cell
from .neighbors import NeighborsResult, compute_neighbors
from .nmi_ari import nmi_ari_cluster_labels_kmeans, nmi_ari_cluster_labels_leiden
from .pcr import pcr_comparison, principal_component_regression
from .protein import protein_knn_error, protein_knn_overlap
from .purity import knn_purity, knn_purity_curve, knn_purity_per_batch
from .silhouette import bras, silhouette_batch, silhouette_label, silhouette_samples
from .suite import scib_suite
from .trajectory import bin_batch_entropy, diffusion_pseudotime, pseudotime_correlation

#: metric name -> (higher_is_better, family). Families: "batch" (mixing) and "bio" (conservation)
#: feed the scIB aggregate; the others are the paper's task scores.
METRICS = {
    # the paper
    "batch_entropy_mixing": (True, "batch"),
    "knn_purity": (True, "bio"),
    "accuracy": (True, "classification"),
    "weighted_accuracy": (True, "classification"),
    "per_class_accuracy": (True, "classification"),
    "max_posterior": (True, "classification"),
    "protein_knn_error": (False, "protein"),
    "protein_knn_overlap": (True, "protein"),
    "bin_batch_entropy": (True, "trajectory"),
    "pseudotime_correlation": (True, "trajectory"),
    "auroc": (True, "de"),
    "kendall_tau": (True, "de"),
    "kmeans_ari": (True, "clustering"),
    "kmeans_nmi": (True, "clustering"),
    "kmeans_silhouette": (True, "clustering"),
    # scIB
    "silhouette_label": (True, "bio"),
    "isolated_labels": (True, "bio"),
    "isolated_label_f1": (True, "bio"),
    "nmi_ari_cluster_labels_kmeans_nmi": (True, "bio"),
    "nmi_ari_cluster_labels_kmeans_ari": (True, "bio"),
    "nmi_ari_cluster_labels_leiden_nmi": (True, "bio"),
    "nmi_ari_cluster_labels_leiden_ari": (True, "bio"),
    "clisi_knn": (True, "bio"),
    "cell_cycle_conservation": (True, "bio"),
    "hvg_overlap": (True, "bio"),
    "trajectory_conservation": (True, "bio"),
    "silhouette_batch": (True, "batch"),
    "bras": (True, "batch"),
    "ilisi_knn": (True, "batch"),
    "kbet": (True, "batch"),
    "kbet_per_label": (True, "batch"),
    "graph_connectivity": (True, "batch"),
    "pcr_comparison": (True, "batch"),
}


def higher_is_better(name: str) -> bool:
    return METRICS[name][0]


def family(name: str) -> str:
    return METRICS[name][1]


SCIB_BATCH = ("bras", "ilisi_knn", "kbet_per_label", "graph_connectivity", "pcr_comparison", "silhouette_batch")
SCIB_BIO = ("isolated_labels", "isolated_label_f1", "nmi_ari_cluster_labels_kmeans_nmi",
            "nmi_ari_cluster_labels_kmeans_ari", "nmi_ari_cluster_labels_leiden_nmi",
            "nmi_ari_cluster_labels_leiden_ari", "silhouette_label", "clisi_knn", "cell_cycle_conservation",
            "hvg_overlap", "trajectory_conservation")

__all__ = [name for name in dir() if not name.startswith("_")]
