"""Tables of a run: per-scenario aggregates over seeds, the method ranking, failed/skipped jobs.

All functions are pure: tidy result rows (benchmark/results.py) in, a DataFrame out.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

CURVE_KEYS = ["k", "cell_type", "bin"]
GROUP_KEYS = ["scenario", "dataset", "method", "metric", *CURVE_KEYS]

#: direction and family of each metric (the scIB split: batch removal vs biology kept).
#: ``higher``: True when larger is better; ``family``: batch | bio | resource | info.
METRIC_INFO = {
    "batch_entropy_mixing": (True, "batch"),  # paper, Fig. 2b
    "bin_entropy_mixing": (True, "batch"),  # paper, Fig. 4c
    "ilisi": (True, "batch"),
    "kbet": (True, "batch"),
    "kbet_acceptance": (True, "batch"),
    "graph_connectivity": (True, "batch"),
    "silhouette_batch": (True, "batch"),
    "pcr_comparison": (True, "batch"),
    "knn_purity": (True, "bio"),  # paper, Fig. 2c
    "accuracy": (True, "bio"),
    "weighted_accuracy": (True, "bio"),  # paper, Online Methods
    "per_class_accuracy": (True, "bio"),
    "nmi": (True, "bio"),
    "ari": (True, "bio"),
    "nmi_ari_cluster_labels_kmeans": (True, "bio"),
    "nmi_ari_cluster_labels_leiden": (True, "bio"),
    "silhouette_label": (True, "bio"),
    "clisi": (True, "bio"),
    "clisi_knn": (True, "bio"),
    "isolated_labels": (True, "bio"),
    "protein_knn_overlap": (True, "bio"),  # paper, Fig. 5c / Supp. Fig. 11
    "protein_discrepancy": (False, "bio"),
    "auroc": (True, "bio"),  # paper, Fig. 8 / Supp. Fig. 13
    "kendall_tau": (True, "bio"),
    "pseudotime_correlation": (True, "bio"),
    "pseudotime_spearman": (True, "bio"),
    "calibration_error": (False, "bio"),
    "expected_calibration_error": (False, "bio"),
    "brier_score": (False, "bio"),
    "heldout_mixing": (False, "bio"),  # a removed type should not be mixed (paper, Fig. 3g)
    "max_posterior_mean": (True, "info"),  # confidence, not correctness
    "wall_time_s": (False, "resource"),
    "peak_memory_mb": (False, "resource"),
}
SCIB_WEIGHTS = {"batch": 0.4, "bio": 0.6}  # scIB's overall score (Luecken et al. 2022)


def _metrics_registry() -> dict:
    """``benchmark.metrics.METRICS`` (name -> (higher_is_better, family)), the authority."""
    try:
        from ..metrics import METRICS

        return METRICS
    except Exception:  # reports must still build if the metrics package cannot be imported
        return {}


_LEVEL_SUFFIXES = ("_coarse", "_fine")


def _without_level(metric: str) -> str:
    """The metric a per-level variant reports (weighted_accuracy_coarse -> weighted_accuracy):
    same direction and family."""
    for suffix in _LEVEL_SUFFIXES:
        if metric.endswith(suffix):
            metric = metric[: -len(suffix)]
    return metric


def metric_direction(metric: str) -> Optional[bool]:
    """True if higher is better, False if lower is, None if unknown (kept out of rankings)."""
    metric = _without_level(metric)
    if "_exponent_" in metric:  # growth exponents of time/memory (scaling): smaller is better
        return False
    reg = _metrics_registry()
    if metric in reg:
        return bool(reg[metric][0])
    if metric in METRIC_INFO:
        return METRIC_INFO[metric][0]
    for suffix, higher in (("_accuracy", True), ("_auroc", True), ("_time_s", False), ("_mb", False)):
        if metric.endswith(suffix):
            return higher
    return None


def metric_family(metric: str) -> str:
    """batch (batch removal), bio (everything a method should keep or get right), resource, info."""
    metric = _without_level(metric)
    if "_exponent_" in metric:  # growth exponents of time/memory (scaling)
        return "resource"
    reg = _metrics_registry()
    if metric in reg:
        return "batch" if reg[metric][1] == "batch" else "bio"
    if metric in METRIC_INFO:
        return METRIC_INFO[metric][1]
    if metric.endswith(("_time_s", "_mb")):
        return "resource"
    return "bio" if metric.endswith(("_accuracy", "_auroc")) else "info"


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows holding a measured value (status ok, metric not the job-status marker)."""
    return df[(df["status"] == "ok") & (df["metric"] != "status") & df["value"].notna()]


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (ddof=1; NaN for one seed) and seed count per metric point."""
    ok = ok_rows(df)
    if ok.empty:
        return pd.DataFrame(columns=[*GROUP_KEYS, "mean", "std", "n_seeds"])
    g = ok.groupby(GROUP_KEYS, dropna=False)["value"]
    out = g.agg(mean="mean", std="std", n_seeds="count").reset_index()
    return out.sort_values(GROUP_KEYS, na_position="first").reset_index(drop=True)


def scalar_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """One number per (scenario, dataset, method, seed, metric).

    Curves over k or pseudotime bins are averaged (the area under the paper's curves);
    per-cell-type rows are averaged too unless the same metric also has an overall row.
    """
    ok = ok_rows(df)
    if ok.empty:
        return pd.DataFrame(columns=["scenario", "dataset", "method", "seed", "metric", "value"])
    keys = ["scenario", "dataset", "method", "seed", "metric"]
    overall = ok[ok["cell_type"].isna()]
    per_type = ok[ok["cell_type"].notna()]
    # metrics that only exist per type (e.g. per_class_accuracy) are summarised by their mean
    only_typed = per_type[~per_type.set_index(keys).index.isin(overall.set_index(keys).index)]
    parts = [p.groupby(keys, dropna=False)["value"].mean() for p in (overall, only_typed) if not p.empty]
    return pd.concat(parts).reset_index() if parts else pd.DataFrame(columns=[*keys, "value"])


def scenario_table(df: pd.DataFrame, scenario: str) -> pd.DataFrame:
    """Wide table for one scenario: a row per (dataset, method), a column per metric (mean ± sd)."""
    s = scalar_metrics(df[df["scenario"] == scenario])
    s = s[~s["metric"].astype(str).str.contains(":", regex=False)]  # grouped per-type metrics: see figures
    if s.empty:
        return pd.DataFrame()
    g = s.groupby(["dataset", "method", "metric"])["value"].agg(["mean", "std", "count"]).reset_index()
    g["cell"] = [_fmt_mean_sd(m, sd) for m, sd in zip(g["mean"], g["std"])]
    wide = g.pivot_table(index=["dataset", "method"], columns="metric", values="cell", aggfunc="first")
    seeds = g.groupby(["dataset", "method"])["count"].max().rename("seeds")
    wide = wide.join(seeds)
    order = sorted(wide.columns.drop("seeds"), key=lambda m: (metric_family(m) == "resource", m))
    return wide[["seeds", *order]].reset_index()


def _fmt_mean_sd(mean: float, sd: float) -> str:
    if pd.isna(mean):
        return ""
    digits = 1 if abs(mean) >= 100 else 3
    if pd.isna(sd):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _scaled_scores(frame: pd.DataFrame, controls: set) -> pd.DataFrame:
    """Scale each metric to [0, 1] (1 = best), flipping lower-is-better ones.

    With two or more control methods that differ on the metric, Open Problems v2 scaling: the
    worst control is 0 and the best 1, clipped to [0, 1]; otherwise min-max across methods.
    """
    out = []
    for metric, g in frame.groupby("metric"):
        signed = g["value"] if metric_direction(metric) else -g["value"]
        ctrl = signed[g["method"].isin(controls)]
        if len(ctrl) >= 2 and ctrl.max() > ctrl.min():
            lo, hi, how = ctrl.min(), ctrl.max(), "controls"
        else:
            lo, hi, how = signed.min(), signed.max(), "min-max"
        span = hi - lo
        score = ((signed - lo) / span).clip(0, 1) if span > 0 else pd.Series(1.0, index=g.index)
        out.append(g.assign(score=score, scaling=how))
    return pd.concat(out) if out else frame.assign(score=np.nan, scaling="")


def reference_rows(df: pd.DataFrame, references: set) -> pd.DataFrame:
    """Mean ± sd of the reference rows (e.g. ``signature_seeds``: how right the seed labels
    themselves are), one line per (scenario, dataset, reference, metric): shown beside the
    ranking, never ranked (they are inputs' properties, not methods)."""
    s = scalar_metrics(df[df["method"].isin(references)])
    if s.empty:
        return pd.DataFrame(columns=["scenario", "dataset", "reference", "metric", "mean", "std", "seeds"])
    g = s.groupby(["scenario", "dataset", "method", "metric"])["value"]
    out = g.agg(mean="mean", std="std", seeds="count").reset_index().rename(columns={"method": "reference"})
    return out.sort_values(["scenario", "dataset", "reference", "metric"]).reset_index(drop=True)


def summary_ranking(df: pd.DataFrame, controls: Optional[set] = None,
                    references: Optional[set] = None) -> pd.DataFrame:
    """scIB-style ranking of methods over every scenario and dataset of a run.

    Rows of ``references`` (labels that are not methods, e.g. the seeds' own accuracy) are left
    out of the scaling and the ranking: see :func:`reference_rows`.

    For each (scenario, dataset) every metric with a known direction is averaged over seeds,
    scaled to [0, 1] (1 = best) against the control methods when two or more controls ran
    (Open Problems v2), else min-max across methods,
    averaged within the batch and bio families, and combined as 0.4 x batch + 0.6 x bio
    (bio alone where a task has no batch metric). A method's aggregate is the mean over the
    (scenario, dataset) tasks it ran; per-metric ranks (1 = best) use the mean scaled score.
    """
    controls = set(controls or ())
    s = scalar_metrics(df[~df["method"].isin(set(references or ()))])
    if s.empty:
        return pd.DataFrame()
    s = s[[metric_direction(m) is not None and metric_family(m) in ("batch", "bio") for m in s["metric"]]]
    if s.empty:
        return pd.DataFrame()
    per_task = s.groupby(["scenario", "dataset", "method", "metric"])["value"].mean().reset_index()
    scored = pd.concat(
        [_scaled_scores(g, controls) for _, g in per_task.groupby(["scenario", "dataset"])], ignore_index=True
    )
    scored["family"] = scored["metric"].map(metric_family)
    fam = scored.groupby(["scenario", "dataset", "method", "family"])["score"].mean().unstack("family")
    for f in SCIB_WEIGHTS:
        if f not in fam:
            fam[f] = np.nan
    both = fam["batch"].notna() & fam["bio"].notna()
    task_score = np.where(both, SCIB_WEIGHTS["batch"] * fam["batch"] + SCIB_WEIGHTS["bio"] * fam["bio"],
                          fam["bio"].fillna(fam["batch"]))
    fam = fam.assign(overall=task_score).reset_index()
    table = fam.groupby("method").agg(
        aggregate=("overall", "mean"), batch=("batch", "mean"), bio=("bio", "mean"), tasks=("overall", "count")
    )
    per_metric = scored.groupby(["method", "metric"])["score"].mean().unstack("metric")
    ranks = per_metric.rank(ascending=False, method="min").add_prefix("rank: ")
    table = table.join(ranks)
    table.insert(0, "control", [m in controls for m in table.index])
    table = table.sort_values("aggregate", ascending=False)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table.reset_index()


def problem_jobs(df: pd.DataFrame) -> pd.DataFrame:
    """Skipped and failed jobs with their reason, one row per job."""
    bad = df[df["status"].isin(["skipped", "failed"])]
    if bad.empty:
        return pd.DataFrame(columns=["status", "scenario", "dataset", "method", "seeds", "reason"])
    bad = bad.assign(reason=bad["error"].fillna("").astype(str).str.strip().str.split("\n").str[-1])
    out = (bad.groupby(["status", "scenario", "dataset", "method", "reason"], dropna=False)["seed"]
           .apply(lambda s: ",".join(str(int(x)) for x in sorted(s.dropna().unique())))
           .rename("seeds").reset_index())
    return out[["status", "scenario", "dataset", "method", "seeds", "reason"]].sort_values(
        ["status", "scenario", "dataset", "method"]).reset_index(drop=True)


def to_markdown(table: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    if table is None or table.empty:
        return "_(none)_\n"

    def cell(v):
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else ""
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else format(v, floatfmt)
        return str(v).replace("|", "\\|").replace("\n", " ")

    cols = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in rec) + " |" for rec in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
