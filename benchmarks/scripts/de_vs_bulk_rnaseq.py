"""DE against a second, independent bulk reference: RNA-seq of sorted blood populations (SRP051688,
Hoek et al. 2015; ``de_references/bulk_sorted_pbmc_counts_SRP051688.csv``, 2 replicates each), scored on
pbmc_facs cells. A replication of the DE setting choice, pre-registered in DEVELOPERS.md before any
result existed (findings, "PRE-REGISTERED 2026-11-26").

Reference, per pair of populations: edgeR quasi-likelihood on the 4 bulk libraries (filterByExpr, TMM,
robust QL); positives = FDR < 0.05 and |log2 FC| > 1 (genes filtered out by filterByExpr are negatives).
Cells: pbmc_facs, at most ``--max-cells`` per group (seeded subsample); genes: in the bulk table and detected
in >= 10 of the comparison's cells. Methods and rows as in de_vs_bulk_pbmc_facs.py (imported from it):
scVI / scANVI population Bayes factors with f_w ("scale", the default) and (1 - pi) f_w ("(1-pi)f" rows),
the default delta 0.25, delta 1 and the estimated delta (coef 0.6); edgeR, Wilcoxon and t-test on the
same cells and genes.

Decision (pre-registered): candidate C = "(1-pi)f BF population, delta est. coef 0.6" replaces the
default D = "BF population, delta 0.25" (f_w) if, for both scVI and scANVI, C's mean AUROC over the comparisons is
above D's and C >= D in at least 4 of the 6. The script prints that verdict. Result (2026-11-26, seeds 0-1): mean AUROC scVI 0.736 vs 0.703,
scANVI 0.741 vs 0.716, C >= D in 5 of 6 each: adopted (edgeR 0.751, Wilcoxon 0.717, t-test 0.713).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scripts/de_vs_bulk_rnaseq.py --seeds 0,1
    ... --comparisons B_vs_NK,Mono_vs_B   # a subset (the verdict needs all six)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

BULK_FILE = "de_references/bulk_sorted_pbmc_counts_SRP051688.csv"
#: bulk column prefix and pbmc_facs cell_type labels of each population
POPULATIONS = {
    "B": ("primary human B cells", ("B cell",)),
    "NK": ("primary human NK cells", ("NK cell",)),
    "T": ("primary human T cells", ("CD8+ cytotoxic T", "CD4+ T helper", "CD8+ naive cytotoxic T", "CD4+ memory T",
                                    "CD4+ regulatory T", "CD4+ naive T")),
    "Mono": ("primary human monocytes", ("CD14+ monocyte",)),
}
COMPARISONS = ("B_vs_NK", "B_vs_T", "NK_vs_T", "Mono_vs_B", "Mono_vs_NK", "Mono_vs_T")
#: the pre-registered candidate and the default of the time (f_w, delta 0.25); the row label of the
#: latter was "BF population, default" until that default changed (old CSVs are read with it)
CANDIDATE, DEFAULT = "(1-pi)f BF population, delta est. coef 0.6", "BF population, delta 0.25"
OLD_LABELS = {"BF population, default": "BF population, delta 0.25",
              "P(|LFC|>delta) population, default": "P(|LFC|>delta) population, delta 0.25"}

_R_BULK = r"""
function(counts, group) {
  suppressPackageStartupMessages(library(edgeR))
  group <- factor(group, levels = c("g2", "g1"))
  design <- model.matrix(~ group)
  y <- DGEList(counts = as.matrix(counts), group = group)
  keep <- filterByExpr(y, design)
  y <- calcNormFactors(y[keep, , keep.lib.sizes = FALSE])
  y <- estimateDisp(y, design)
  tt <- topTags(glmQLFTest(glmQLFit(y, design, robust = TRUE), coef = 2), n = Inf, sort.by = "none")$table
  list(keep = keep, logFC = tt$logFC, pvalue = tt$PValue, fdr = tt$FDR)
}
"""


def rnaseq_reference(pop1: str, pop2: str, lfc_min: float = 1.0) -> pd.DataFrame:
    """Per gene symbol of the bulk table: ``padj`` (the edgeR FDR, set to 1 where |log2 FC| <= lfc_min or
    the gene is filtered out, so that the AUROC's positives are FDR < 0.05 and |log2 FC| > lfc_min),
    ``statistic`` (-log10 p, 0 where filtered) and ``logFC`` (pop1 over pop2)."""
    from datasets import shared_data_dir
    from methods.rbridge import numpy_to_r_matrix, r_function, r_list_to_dict, r_vector_to_numpy, to_r

    table = pd.read_csv(shared_data_dir() / BULK_FILE, index_col=0)
    table = table[~table.index.duplicated()]
    cols = {p: [c for c in table.columns if c.startswith(POPULATIONS[p][0] + " rep")] for p in (pop1, pop2)}
    counts = table[cols[pop1] + cols[pop2]].to_numpy(dtype=np.float64)
    group = np.array(["g1"] * len(cols[pop1]) + ["g2"] * len(cols[pop2]))
    res = r_list_to_dict(r_function(_R_BULK, "edgeR on the bulk RNA-seq")(
        numpy_to_r_matrix(counts), to_r(group)))
    keep = r_vector_to_numpy(res["keep"]).astype(bool)
    out = pd.DataFrame({"padj": 1.0, "statistic": 0.0, "logFC": 0.0}, index=table.index)
    lfc, p, fdr = (r_vector_to_numpy(res[k]) for k in ("logFC", "pvalue", "fdr"))
    out.loc[keep, "logFC"] = lfc
    out.loc[keep, "statistic"] = -np.log10(np.maximum(p, 1e-300))
    out.loc[keep, "padj"] = np.where(np.abs(lfc) > lfc_min, fdr, 1.0)
    return out


def build_input(comparison: str, max_cells: int, min_cells: int = 10, seed: int = 0):
    """(pbmc_facs cells of the two populations, at most ``max_cells`` each, x bulk genes detected in >=
    ``min_cells`` of them, obs de_group; bulk padj; bulk statistic; (group1, group2))."""
    import scipy.sparse as sp

    from benchmark.scenarios.de_bulk import grouped
    from benchmark.scenarios.inputs import load

    g1, g2 = comparison.split("_vs_")
    bulk = rnaseq_reference(g1, g2)
    a = grouped(load("pbmc_facs"), {g: POPULATIONS[g][1] for g in (g1, g2)})
    rng = np.random.default_rng(seed)
    picks = []
    for g in (g1, g2):  # group 1's cells, then group 2's
        idx = np.flatnonzero(a.obs["de_group"].astype(str).to_numpy() == g)
        if len(idx) > max_cells:
            idx = np.sort(rng.choice(idx, size=max_cells, replace=False))
        picks.append(idx)
    a = a[np.concatenate(picks)].copy()
    detected = np.asarray((sp.csr_matrix(a.X) > 0).sum(0)).ravel() >= min_cells
    genes = [g for g, d in zip(a.var_names, detected) if d and g in bulk.index]
    a = a[:, genes].copy()
    return a, bulk["padj"].reindex(a.var_names), bulk["statistic"].reindex(a.var_names), (g1, g2)


def verdict(df: pd.DataFrame, comparisons) -> list[str]:
    """The pre-registered decision, per model and overall, from per-(comparison, method) mean AUROCs."""
    lines, adopt = [], True
    for model in ("scvi", "scanvi"):
        c = df.loc[f"{model} {CANDIDATE}", list(comparisons)]
        d = df.loc[f"{model} {DEFAULT}", list(comparisons)]
        wins = int((c >= d).sum())
        ok = c.mean() > d.mean() and wins >= 4
        adopt &= ok
        lines.append(f"{model}: candidate mean {c.mean():.3f} vs default {d.mean():.3f}; candidate >= default in "
                     f"{wins} of {len(comparisons)} -> {'passes' if ok else 'fails'}")
    lines.append("verdict: " + ("ADOPT the candidate as the default" if adopt else "keep the default"))
    return lines


def compute(args) -> pd.DataFrame:
    """Per-seed rows (method, auroc, kendall_tau, seconds, seed, comparison) of every comparison."""
    import torch

    from de_vs_bulk_pbmc_facs import run_baselines, run_native

    torch.set_num_threads(args.threads)
    log = lambda s: print(s, flush=True)  # noqa: E731
    comparisons = [c for c in args.comparisons.split(",") if c]
    for c in comparisons:
        if c not in COMPARISONS:
            raise SystemExit(f"--comparisons: unknown {c!r}; choose from {COMPARISONS}")
    models = [m for m in args.models.split(",") if m]
    rows = []
    for comp in comparisons:
        a, padj, stat, groups = build_input(comp, args.max_cells)
        log(f"{comp}: {a.n_obs} cells x {a.n_vars} genes, {int((padj < 0.05).sum())} bulk positives")
        for i, seed in enumerate(int(s) for s in args.seeds.split(",")):
            rs = run_native(a, groups, seed, models, args.n_epochs, "latent", 0, 200, [1.0], [0.6], padj, stat, log,
                            None, "zinb", ("scale", "mean"))
            if i == 0:  # the tests are deterministic
                rs += run_baselines(a, groups, seed, padj, stat, True, log)
            rows += [{**r, "seed": seed, "comparison": comp} for r in rs]
    return pd.DataFrame(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--comparisons", default=",".join(COMPARISONS))
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--models", default="scvi,scanvi")
    p.add_argument("--n-epochs", type=int, default=150)
    p.add_argument("--max-cells", type=int, default=400, help="cells per group at most (seeded subsample)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    p.add_argument("--out", default=None, help="write the per-seed rows here (CSV)")
    p.add_argument("--from-csv", default=None,
                   help="comma-separated --out files of earlier runs (e.g. comparisons split over two processes): "
                        "print their joint table and verdict without computing anything")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    if args.from_csv:
        df = pd.concat([pd.read_csv(f) for f in args.from_csv.split(",") if f])
        for old, new in OLD_LABELS.items():
            df["method"] = df["method"].str.replace(old, new, regex=False)
    else:
        df = compute(args)
    if args.out:
        df.to_csv(args.out, index=False)
    comparisons = [c for c in COMPARISONS if c in set(df["comparison"])]
    table = df.pivot_table(index="method", columns="comparison", values="auroc", aggfunc="mean", sort=False)
    table = table[comparisons]
    table["mean"] = table.mean(1)
    pd.set_option("display.width", 250)
    seeds = sorted(set(df["seed"]))
    print(f"\nAUROC against bulk RNA-seq (edgeR FDR < 0.05 and |log2 FC| > 1), pbmc_facs cells, mean over seeds "
          f"{seeds}; {time.perf_counter() - t0:.0f}s total")
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))
    if len(comparisons) == len(COMPARISONS) and {f"{m} {CANDIDATE}" for m in ("scvi", "scanvi")} <= set(table.index):
        print("\n" + "\n".join(verdict(table, comparisons)))


if __name__ == "__main__":
    main()
