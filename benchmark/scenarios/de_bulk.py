"""Differential expression against bulk references (paper, "Hypotheses testing in harmonized
datasets", Figure 8, Supplementary Figure 13).

Two cell groups are compared in each dataset alone and in the harmonized pair: scVI Bayes factors
(cells with z ~ q(z|x), batch marginalised), scANVI (label-conditioned), edgeR, a t-test and a
Wilcoxon test. The Bayes factors use the adapters' default ``de_compare="population"`` (evidence
that the two populations' mean expression, the ZINB mean (1 - pi) f_w, differs by more than a
threshold estimated from all genes' LFCs; chosen by a pre-registered replication on a bulk RNA-seq
reference, methods/native/scvi/de.py; ``de_delta=0.25, de_expression="scale"`` gives the former
default);
pass ``de_compare="pairs"`` in the method params for the paper's random-pair frequency, which sits
near 0.5 for most bulk-DE genes on pbmc_facs. Scores: AUROC against the bulk reference (positives: adjusted p < 0.05) and
Kendall tau between the scores and the bulk -log10 p-values over all shared genes. Each seed
draws a different subsample of the cells (``profile.de_subsample``), giving error bars.

References (``../shared/data/de_references``): CD4 vs CD8 T (``CD_*``) and B vs dendritic cells
(``BDC_*``). Inputs: ``pbmc_facs`` (CD4 vs CD8), ``pbmc3k`` (CD4 vs CD8, B vs DC), the pair
``pbmc_facs+pbmc3k`` (both; pbmc3k alone holds the DCs) and the simulator (type_0 vs type_1,
truth = the planted effects). Joint setting as the paper: the pair is harmonized with scVI (all
cells, the profile's genes and epochs, the scenario seed), pbmc3k's annotation (the annotated
dataset, as PBMC-8K in the paper; it alone holds DCs) is transferred to pbmc_facs by a k = 10
nearest-neighbour vote in the joint latent, and the groups are pbmc3k's own labels plus the
transferred ones. How often the transferred group equals the group of pbmc_facs' own FACS label
is kept in the input's meta (``transfer_accuracy``, :func:`group_agreement`).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from methods.base import TaskSpec

from .base import SIMULATED, Inputs, Scenario, concat, drop_empty, source_label, truth_of
from .inputs import PBMC_PAIR, load, simulate

METHODS = ("scvi", "scanvi", "edger", "ttest", "wilcoxon")
BULK_FILE = "de_references/pbmc_bulk_limma_de_gene_info.csv"
#: comparison -> (bulk column prefix, {group: fine labels per dataset})
COMPARISONS = {
    "CD4_vs_CD8": ("CD", {"CD4": ("CD4+ T helper", "CD4+ memory T", "CD4+ regulatory T", "CD4+ naive T",
                                  "Naive CD4 T", "Memory CD4 T"),
                          "CD8": ("CD8+ cytotoxic T", "CD8+ naive cytotoxic T", "CD8 T")}),
    "B_vs_DC": ("BDC", {"B": ("B cell", "B"), "DC": ("DC", "Dendritic cell")}),
}
SOURCES_COMPARISONS = {"pbmc_facs": ("CD4_vs_CD8",), "pbmc3k": ("CD4_vs_CD8", "B_vs_DC"),
                       PBMC_PAIR: ("CD4_vs_CD8", "B_vs_DC")}


def bulk_reference(prefix: str) -> pd.DataFrame:
    """Per gene symbol: ``padj`` and ``statistic`` (-log10 p) of the bulk comparison."""
    from datasets import shared_data_dir

    path = shared_data_dir() / BULK_FILE
    if not path.exists():
        raise FileNotFoundError(f"bulk DE reference {path} not found (set HARMONIZATION_BENCH_SHARED_DATA)")
    bulk = pd.read_csv(path, index_col=0).drop_duplicates("GS").set_index("GS")
    return pd.DataFrame({"padj": bulk[f"{prefix}_adj.P.Val"],
                         "statistic": -np.log10(bulk[f"{prefix}_P.Value"].clip(lower=1e-300))})


#: comparison -> ImmuneSigDB file stem (``<stem>.UP.gmt`` and ``<stem>.DN.gmt``)
GENE_SET_FILES = {"CD4_vs_CD8": "de_references/immunesigdb_CD4CD8"}


def gene_set_reference(comparison: str, genes, min_sets: int = 2) -> pd.DataFrame:
    """A second kind of reference: ImmuneSigDB (MSigDB C7 v6.2) gene sets of the comparison, as
    grepped by the scANVI authors (HarmonizationSCANVI, Additional_Scripts; for CD4 vs CD8, 12 UP
    and 12 DN sets from several experiments).

    Per gene of ``genes``: ``n_sets``, how many of the sets (UP or DN: scores are unsigned) hold it,
    and ``padj``, 0 where ``n_sets >= min_sets`` and 1 elsewhere, so that :func:`auroc` (positives:
    padj < 0.05) scores against the genes the sets agree on; ``statistic`` = ``n_sets`` for Kendall tau.
    """
    from datasets import shared_data_dir

    if comparison not in GENE_SET_FILES:
        raise ValueError(f"no gene sets for {comparison!r}; choose from {sorted(GENE_SET_FILES)}")
    counts = pd.Series(0, index=pd.Index(list(genes), dtype=object), dtype=np.int64)
    for side in ("UP", "DN"):
        path = shared_data_dir() / f"{GENE_SET_FILES[comparison]}.{side}.gmt"
        if not path.exists():
            raise FileNotFoundError(f"gene sets {path} not found (set HARMONIZATION_BENCH_SHARED_DATA)")
        for line in path.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) > 2:  # name, url, genes...
                members = counts.index.intersection(pd.Index(set(fields[2:])))
                counts[members] += 1
    return pd.DataFrame({"padj": np.where(counts >= min_sets, 0.0, 1.0), "statistic": counts.astype(float),
                         "n_sets": counts}, index=counts.index)


def grouped(adata, groups: dict):
    fine = adata.obs["cell_type"].astype(str)
    group = pd.Series(np.nan, index=adata.obs_names, dtype=object)
    for g, labels in groups.items():
        group[fine.isin(labels).to_numpy()] = g
    keep = group.notna().to_numpy()
    out = adata[keep].copy()
    out.obs["de_group"] = pd.Categorical(group[keep].to_numpy())
    out.obs["cell_type"] = out.obs["de_group"]
    return out


def subsample_groups(adata, frac: float, seed: int):
    rng = np.random.default_rng(seed)
    keep = np.zeros(adata.n_obs, bool)
    for g in adata.obs["de_group"].astype(str).unique():
        idx = np.flatnonzero(adata.obs["de_group"].astype(str).to_numpy() == g)
        keep[rng.choice(idx, size=max(2, int(round(len(idx) * frac))), replace=False)] = True
    return adata[keep].copy()


#: joint setting: the annotated dataset whose labels are transferred to the other (paper: PBMC-8K)
ANNOTATED = "pbmc3k"


def transferred_pair(source, profile, seed):
    """(the pair with ``cell_type`` of the non-annotated cells replaced by labels transferred from
    ANNOTATED with kNN (k = 10) in a joint scVI latent (paper, "Hypotheses testing in harmonized
    datasets"), the replaced labels of those cells for :func:`group_agreement`)."""
    from methods.native.scvi import SCVI

    from .base import knn_transfer
    from .inputs import prepare

    adata = concat({n: load(n) for n in source.split("+")})
    if ANNOTATED not in set(adata.obs["batch"].astype(str)):
        raise ValueError(f"joint DE source {source!r} must contain {ANNOTATED!r}, whose labels are transferred")
    train = prepare(adata, profile, max_cells=None)  # the profile's genes, every cell
    n_epochs = profile.params_for("scvi", "de_bulk").get("n_epochs", 400)
    model = SCVI(train, "batch", n_latent=profile.n_latent, seed=seed)
    model.train(n_epochs)
    own = train.obs["cell_type"].astype(object).to_numpy()
    target = train.obs["batch"].astype(str).to_numpy() != ANNOTATED
    predicted = knn_transfer(model.get_latent_representation(train), own, ~target & ~pd.isna(own), k=10)
    adata = adata[train.obs_names].copy()
    replaced = pd.Series(own[target], index=train.obs_names[target], dtype=object)
    adata.obs["cell_type"] = pd.Categorical(np.where(target, predicted, own))
    logging.getLogger(__name__).info(f"de_bulk {source}: {ANNOTATED} labels transferred by kNN (k=10) on scVI "
                                     f"({n_epochs} epochs, seed {seed}) to {int(target.sum())} cells")
    return adata, replaced


def group_agreement(own: pd.Series, transferred: pd.Series, groups: dict) -> float:
    """Agreement of transferred and own groups over the cells that are in a compared group by
    either label (a cell moved into a group it does not belong to counts as an error)."""
    def group_of(labels):
        out = pd.Series(np.nan, index=labels.index, dtype=object)
        for g, names in groups.items():
            out[labels.astype(str).isin(names).to_numpy()] = g
        return out

    own_g, moved_g = group_of(own), group_of(transferred.reindex(own.index))
    judged = (own_g.notna() | moved_g.notna()).to_numpy()
    return float((own_g[judged].astype(str) == moved_g[judged].astype(str)).mean()) if judged.any() else float("nan")


def real_inputs(source, profile, seed):
    out = []
    joint, replaced = transferred_pair(source, profile, seed) if source == PBMC_PAIR else (None, None)
    for name in SOURCES_COMPARISONS[source]:
        prefix, groups = COMPARISONS[name]
        bulk = bulk_reference(prefix)
        meta = {}
        if joint is not None:
            adata = joint.copy()
            meta["transfer_accuracy"] = group_agreement(replaced, adata.obs["cell_type"], groups)
        else:
            adata = load(source)
        adata = grouped(adata, groups)
        if adata.obs["de_group"].nunique() < 2:
            continue
        adata = adata[:, [g for g in adata.var_names if g in bulk.index]].copy()
        adata = drop_empty(subsample_groups(adata, profile.de_subsample, seed))
        truth_padj = bulk["padj"].reindex(adata.var_names)
        truth = truth_of(adata, bulk_padj=truth_padj, bulk_statistic=bulk["statistic"].reindex(adata.var_names),
                         de_truth=(truth_padj < 0.05).astype(float))
        g1, g2 = name.split("_vs_")
        task = TaskSpec(n_latent=profile.n_latent, outputs=("de",), de_key="de_group", de_groups=(g1, g2))
        out.append(Inputs(source_label(source, name), adata, truth, task, meta=meta))
    return out


def simulated_inputs(profile, seed):
    a = simulate(n_cells=profile.sim_cells, n_genes=profile.sim_genes, n_batches=2, n_cell_types=4, seed=0,
                 trajectory=False, hidden_types=None)
    de = a.uns["de_genes"]
    de = de[(de["group1"] == "type_0") & (de["group2"] == "type_1")].set_index("gene")["log2_fold_change"]
    a = grouped(a, {"type_0": ("type_0",), "type_1": ("type_1",)})
    a = drop_empty(subsample_groups(a, profile.de_subsample, seed))
    lfc = de.reindex(a.var_names).fillna(0.0).abs()
    padj = pd.Series(np.where(lfc > 0, 0.0, 1.0), index=a.var_names)
    truth = truth_of(a, bulk_padj=padj, bulk_statistic=lfc, de_truth=(padj < 0.05).astype(float))
    task = TaskSpec(n_latent=profile.n_latent, outputs=("de",), de_key="de_group", de_groups=("type_0", "type_1"))
    return [Inputs(source_label(SIMULATED, "type_0_vs_type_1"), a, truth, task)]


def build(source, profile, seed):
    return simulated_inputs(profile, seed) if source == SIMULATED else real_inputs(source, profile, seed)


def score(inputs, result, profile):
    from benchmark.metrics.de import auroc, kendall_tau

    if result.de is None:
        raise ValueError(f"{result.method} returned no DE table")
    s = pd.Series(result.de["score"].to_numpy(float), index=result.de.index.astype(str))
    return [dict(metric="auroc", value=auroc(s, inputs.truth["bulk_padj"])),
            dict(metric="kendall_tau", value=kendall_tau(s, inputs.truth["bulk_statistic"]))]


SCENARIO = Scenario(
    name="de_bulk",
    figure="Fig. 8",
    description="DE between two groups vs a bulk reference; AUROC and Kendall tau, alone and joint",
    sources=(SIMULATED, "pbmc_facs", "pbmc3k", PBMC_PAIR),
    build=build,
    methods=METHODS,
    score=score,
    outputs=("de",),
    paper_notes="Fig. 8 / Supp. Fig. 13 (PBMC-8K + PBMC-68K): scVI and scANVI above edgeR in AUROC "
                "and Kendall tau for CD4 vs CD8 and B vs DC, joint not worse than each alone, scVI "
                "slightly above scANVI; bars only, no number in the text.",
)
