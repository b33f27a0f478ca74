"""Run profiles: how big and how long each scenario runs (issue 7, "Done when").

* ``quick``: few epochs, one seed, a few k values, inputs capped in size: ``run all`` on the
  shared data fits in 30 minutes on a 2-core machine (measured figure in the README note).
* ``paper``: the paper's settings: 3 seeds, k from 10 to 500, full inputs, the paper's epochs
  (scVI/scANVI trained to convergence, 400 epochs for small data as in scVI's reproducibility
  scripts), simulated scaling up to 100k cells and 26 batches.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Profile:
    name: str
    seeds: tuple = (0,)
    k_values: tuple = (10, 50, 100)
    default_k: int = 50
    n_genes: int = 1000  # genes kept by the paper's dispersion selection (union over batches)
    max_cells: Optional[int] = 3000  # per input, stratified by batch (None = all)
    n_latent: int = 10
    method_params: dict = field(default_factory=dict)  # method -> params overriding its defaults
    scenario_params: dict = field(default_factory=dict)  # scenario -> method -> params over method_params
    time_limit: Optional[float] = 900.0
    memory_limit_gb: Optional[float] = 12.0
    heldout_max_types: Optional[int] = 3  # cell types c0 tried in the held-out scenario
    both_directions: bool = True  # label transfer A->B and B->A; scANVI with each side's labels
    sim_cells: int = 1500
    sim_genes: int = 500
    n_bins: int = 20  # pseudotime bins (paper, Fig. 4c)
    n_seed_cells: int = 50  # seed labeling: top cells per signature (paper: 50)
    n_hier_seeds: int = 5  # hierarchy: random labelled cells per fine label (paper: 5)
    de_subsample: float = 0.8  # fraction of cells per DE repeat (error bars over subsamples)
    scaling_cells: tuple = (1000, 2000, 4000)
    scaling_batches: tuple = (2, 4)
    scaling_genes: int = 500
    scenario_seeds: dict = field(default_factory=dict)  # scenario -> seeds overriding ``seeds``
    scib_metrics: tuple = ("isolated_labels", "nmi_ari_cluster_labels_kmeans", "silhouette_label", "clisi_knn",
                           "bras", "ilisi_knn", "graph_connectivity", "pcr_comparison")
    scenario_sources: dict = field(default_factory=dict)  # scenario -> sources it runs on (default: all)
    scenario_methods: dict = field(default_factory=dict)  # scenario -> method labels it runs (default: all)

    def params_for(self, method: str, scenario: Optional[str] = None) -> dict:
        return {**self.method_params.get(method, {}), **self.scenario_params.get(scenario, {}).get(method, {})}

    def seeds_for(self, scenario: str) -> tuple:
        return tuple(self.scenario_seeds.get(scenario, self.seeds))

    def sources_for(self, scenario: str, default) -> tuple:
        return tuple(self.scenario_sources.get(scenario, default))

    def methods_for(self, scenario: str, default) -> tuple:
        wanted = self.scenario_methods.get(scenario)
        return tuple(default) if wanted is None else tuple(m for m in default if m.label in wanted)

    def replace(self, **kw) -> "Profile":
        return dataclasses.replace(self, **kw)


_NEURAL = ("scvi", "scanvi")

_CORE = ("scvi", "scanvi", "seurat", "pca", "harmony")

QUICK = Profile(
    name="quick",
    max_cells=2000,
    sim_cells=1000,
    heldout_max_types=1,
    both_directions=False,
    method_params={"scvi": {"n_epochs": 20},
                   **{m: {"n_epochs": 20, "classifier_epochs": 10} for m in ("scanvi", "scanvi_joint", "scanvi_hierarchical")}},
    # seed labeling on pbmc_facs (888 cells), same code, seed 0: 20 epochs leave scANVI at 0.47
    # weighted accuracy (below kNN on PCA, 0.60); 100 epochs give 0.72 (Algorithm 1: 0.80) for ~1.5 min more
    scenario_params={"seed_labeling": {m: {"n_epochs": 100} for m in ("scvi", "scanvi", "scanvi_joint")}},
    scenario_sources={  # the stand-ins only (the paper's own datasets run in "paper" when cached)
        "pair": ("simulated", "cellbench_mixology", "pbmc_facs+pbmc3k"),
        "heldout": ("cellbench_mixology",),
        "annotation": ("cellbench_mixology", "pbmc_facs+pbmc3k"),
        "trajectory": ("simulated", "paul15_tradeseq"),
        "de_bulk": ("simulated", "pbmc_facs", "pbmc_facs+pbmc3k"),
    },
    scenario_methods={
        "heldout": _CORE,
        "annotation": _CORE + ("fastmnn", "scanorama", "scmap_cluster", "scmap_cell", "seurat_transfer",
                               "majority_vote"),
        "trajectory": _CORE + ("random_embedding",),
        "protein": _CORE + ("random_embedding",),
        "scaling": ("scvi", "pca", "harmony", "fastmnn", "combat", "scanorama"),
    },
    scaling_cells=(1000, 2000, 4000),
    scaling_batches=(2, 4),
)

PAPER = Profile(
    name="paper",
    seeds=(0, 1, 2),
    k_values=(10, 20, 50, 100, 200, 300, 400, 500),
    n_genes=2000,
    max_cells=None,
    method_params={"scvi": {"n_epochs": 400}, "scanvi": {"n_epochs": 400}, "scanvi_joint": {"n_epochs": 400}},
    # scaling times scVI as the paper did at 100k cells: "42 min for 250 iterations over 100K cells
    # from 26 datasets" (Online Methods, Scalability); fixed over sizes, so the exponent is per-cell cost
    scenario_params={"scaling": {"scvi": {"n_epochs": 250}}},
    time_limit=6 * 3600.0,
    memory_limit_gb=20.0,
    heldout_max_types=None,
    sim_cells=5000,
    sim_genes=1000,
    scaling_cells=(1000, 3000, 10000, 30000, 100000),
    scaling_batches=(2, 4, 8, 16, 26),
    scaling_genes=1000,
    scib_metrics=("isolated_labels", "nmi_ari_cluster_labels_kmeans", "silhouette_label", "clisi_knn", "bras",
                  "ilisi_knn", "kbet_per_label", "graph_connectivity", "pcr_comparison"),
)

PROFILES = {"quick": QUICK, "paper": PAPER}


def get_profile(profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        from methods.registry import unknown_name_message

        raise ValueError(unknown_name_message("profile", str(profile), PROFILES)) from None
