"""Scaling (beyond the paper's one line, "Rapid integration of multiple datasets"): time and
peak memory of each method as the number of cells grows (2 batches) and as the number of
batches grows (fixed cells), on the simulator. The runner records ``wall_time_s`` and
``peak_memory_mb`` per job (child process, R included); :func:`summarize` fits the growth
exponent b of time ~ a * n^b (and memory) per method on a log-log scale.

The paper: scVI integrated 26 datasets / 105,476 cells in under 50 minutes (one K80 GPU), where
Seurat Alignment and MNN needed over 24 hours and Scanorama 20 minutes (10 CPU cores).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from methods.base import TaskSpec

from .base import SIMULATED, Inputs, Scenario, embedding_of, mixing_rows, source_label, truth_of
from .inputs import simulate

METHODS = ("scvi", "pca", "harmony", "combat", "fastmnn", "mnn", "seurat", "scanorama")


def sizes(profile):
    """(n_cells, n_batches) grid: cells grow at 2 batches, batches grow at the middle cell count."""
    mid = profile.scaling_cells[len(profile.scaling_cells) // 2]
    grid = [(n, 2) for n in profile.scaling_cells]
    grid += [(mid, b) for b in profile.scaling_batches if b != 2]
    return grid


def build(source, profile, seed):
    if source != SIMULATED:
        raise ValueError("the scaling scenario runs on the simulator only (source 'simulated')")
    out = []
    for n, b in sizes(profile):
        a = simulate(n_cells=n, n_genes=profile.scaling_genes, n_batches=b, n_cell_types=5, seed=0,
                     hidden_types=None, n_proteins=0)
        a.obs["cell_type"] = pd.Categorical([np.nan] * a.n_obs)
        out.append(Inputs(source_label(SIMULATED, f"cells={n},batches={b}"), a, truth_of(a), 
                          TaskSpec(n_latent=profile.n_latent, outputs=("embed",)),
                          meta={"n_cells": n, "n_batches": b}))
    return out


def score(inputs, result, profile):
    latent = embedding_of(result, profile.n_latent)
    return mixing_rows(latent, inputs.truth["batch"], [profile.default_k], seed=0)


def _parse(dataset: str):
    inner = dataset[dataset.index("[") + 1:-1]
    kv = dict(part.split("=") for part in inner.split(","))
    return int(kv["cells"]), int(kv["batches"])


def growth_exponent(x, y) -> float:
    """Slope of log(y) on log(x) (least squares): y ~ a * x^slope."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(y)
    if ok.sum() < 2 or len(np.unique(x[ok])) < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def summarize(frame: pd.DataFrame) -> list:
    """Growth exponents per method: over cells (2 batches) and over batches (fixed cells)."""
    t = frame[(frame["metric"].isin(["wall_time_s", "peak_memory_mb"])) & (frame["status"] == "ok")].copy()
    if t.empty:
        return []
    t[["n_cells", "n_batches"]] = [_parse(d) for d in t["dataset"]]
    rows = []
    for (method, metric), g in t.groupby(["method", "metric"]):
        g = g.groupby(["n_cells", "n_batches"], as_index=False)["value"].mean()
        what = "time" if metric == "wall_time_s" else "memory"
        by_cells = g[g["n_batches"] == 2]
        mid = g[g["n_batches"] != 2]["n_cells"].unique()
        by_batches = g[g["n_cells"].isin(mid)] if len(mid) == 1 else g.iloc[0:0]
        for axis, sub, x in (("cells", by_cells, "n_cells"), ("batches", by_batches, "n_batches")):
            value = growth_exponent(sub[x], sub["value"])
            if np.isfinite(value):
                rows.append(dict(scenario="scaling", dataset=source_label(SIMULATED, axis), method=method,
                                 seed=0, metric=f"{what}_exponent_{axis}", value=value))
    return rows


SCENARIO = Scenario(
    name="scaling",
    figure="beyond the paper",
    description="time and peak memory as cells (2 batches) and batches grow; fitted growth exponent",
    sources=(SIMULATED,),
    build=build,
    methods=METHODS,
    score=score,
    summarize=summarize,
    paper_notes="scVI: 105,476 cells in 26 datasets in < 50 min (K80 GPU); Seurat Alignment and "
                "MNN > 24 h, Scanorama 20 min (10 cores).",
)
