"""The paper's published numbers beside ours (DESIGN.md section 4).

``paper_numbers.csv`` holds every number the scANVI paper (Xu et al.) states about a result,
with the figure/section it comes from. :func:`paper_vs_ours` joins it with a run's rows:
one line per paper number and per dataset of ours that ran the same scenario, method and
metric; "not run" where we have nothing to put beside it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from .tables import ok_rows

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.csv")


def load_paper_numbers(path: Path = PAPER_NUMBERS, with_scenarios: bool = True) -> pd.DataFrame:
    """The paper's numbers: the CSV, plus any number a scenario declares (``Scenario.paper``)
    that the CSV does not already hold."""
    df = pd.read_csv(path, dtype={"level": "object", "our_dataset": "object"}, keep_default_na=False,
                     na_values=[""])
    required = {"scenario", "method", "metric", "value", "source"}
    missing = required - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    if with_scenarios:
        extra = _scenario_paper_numbers(set(zip(df["scenario"], df["method"], df["metric"])))
        if not extra.empty:
            df = pd.concat([df, extra], ignore_index=True)
    return df


def _scenario_paper_numbers(known: set) -> pd.DataFrame:
    try:
        from ..scenarios import SCENARIOS
    except Exception:  # a report must build from results.csv alone
        return pd.DataFrame()
    rows = []
    for name, sc in SCENARIOS.items():
        for key, value in (getattr(sc, "paper", None) or {}).items():
            method, metric = key[0], key[1]
            if (name, method, metric) in known:
                continue
            rows.append({"scenario": name, "method": method, "metric": metric, "value": float(value),
                         "level": key[2] if len(key) > 2 else np.nan, "paper_dataset": "", "our_dataset": np.nan,
                         "source": f"{sc.figure} (declared by benchmark/scenarios/{name}.py)",
                         "statement": getattr(sc, "paper_notes", "")})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- scaling support

# "cells10000" / "n_cells=10k" first, then "10000cells" (searching both at once would let a
# number that belongs to the next word win, e.g. the 1000 in "cells1000_batches2")
_CELLS = (re.compile(r"(?:n_?)?cells[_=-]?(\d+)(k?)(?![A-Za-z])", re.I), re.compile(r"(\d+)(k?)[_-]?cells", re.I))
_BATCHES = (re.compile(r"(?:n_?)?batch(?:es)?[_=-]?(\d+)()(?![A-Za-z])", re.I), re.compile(r"(\d+)()[_-]?batch", re.I))


def _parse_count(patterns, text: str) -> float:
    for pattern in patterns:
        m = pattern.search(str(text))
        if m:
            return float(m.group(1)) * (1000 if m.group(2).lower() == "k" else 1)
    return np.nan


def scaling_points(df: pd.DataFrame, scenario: str = "scaling") -> pd.DataFrame:
    """Per job of the scaling scenario: n_cells, n_batches, wall_time_s, peak_memory_mb.

    Sizes come from ``n_cells`` / ``n_batches`` metric rows when the scenario writes them,
    otherwise from the dataset name (e.g. ``simulated_cells10000_batches2``).
    """
    ok = ok_rows(df[df["scenario"] == scenario])
    if ok.empty:
        return pd.DataFrame(columns=["dataset", "method", "seed", "n_cells", "n_batches",
                                     "wall_time_s", "peak_memory_mb"])
    wide = ok[ok["cell_type"].isna() & ok["k"].isna() & ok["bin"].isna()].pivot_table(
        index=["dataset", "method", "seed"], columns="metric", values="value", aggfunc="mean").reset_index()
    for col, pattern in (("n_cells", _CELLS), ("n_batches", _BATCHES)):
        parsed = wide["dataset"].map(lambda d, p=pattern: _parse_count(p, d))
        wide[col] = wide[col].fillna(parsed) if col in wide else parsed
    for col in ("wall_time_s", "peak_memory_mb"):
        if col not in wide:
            wide[col] = np.nan
    return wide[["dataset", "method", "seed", "n_cells", "n_batches", "wall_time_s", "peak_memory_mb"]]


def growth_fit(x, y) -> tuple[float, float]:
    """Least-squares fit of log y = a + b log x; returns (b, a). NaN when < 2 distinct sizes."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if len(np.unique(x[keep])) < 2:
        return np.nan, np.nan
    b, a = np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)
    return float(b), float(a)


def _ours_scaling(points: pd.DataFrame, method: str, metric: str, n: float) -> tuple[float, str]:
    pts = points[(points["method"] == method) & points[metric].notna() & points["n_cells"].notna()]
    if pts.empty:
        return np.nan, ""
    exact = pts[pts["n_cells"] == n]
    if not exact.empty:
        return float(exact[metric].mean()), "measured"
    b, a = growth_fit(pts["n_cells"], pts[metric])
    if np.isnan(b):
        return np.nan, ""
    return float(np.exp(a + b * np.log(n))), (
        f"extrapolated from {int(pts['n_cells'].max()):,} cells (time ~ n^{b:.2f}); this machine")


# ----------------------------------------------------------------------------- the table

def paper_vs_ours(df: pd.DataFrame, paper: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Every paper number with our mean ± sd over seeds beside it and the difference."""
    paper = load_paper_numbers() if paper is None else paper
    ok = ok_rows(df)
    points = scaling_points(df)
    rows = []
    for p in paper.itertuples(index=False):
        base = {"scenario": p.scenario, "method": p.method, "metric": p.metric,
                "level": "" if pd.isna(getattr(p, "level", np.nan)) else str(p.level),
                "paper": float(p.value), "paper_dataset": getattr(p, "paper_dataset", ""),
                "source": p.source}
        if p.scenario == "scaling" and p.metric.startswith("wall_time_s"):
            ours, note = _ours_scaling(points, p.method, "wall_time_s", float(p.level))
            rows.append({**base, "dataset": "simulated", "ours": ours, "ours_sd": np.nan, "seeds": np.nan,
                         "note": note or "not run"})
            continue
        mine = ok[(ok["scenario"] == p.scenario) & (ok["method"] == p.method)]
        mine = _match_metric(mine, p.metric, base["level"])
        if mine.empty:
            rows.append({**base, "dataset": "", "ours": np.nan, "ours_sd": np.nan, "seeds": np.nan,
                         "note": "not run"})
            continue
        stand_in = getattr(p, "our_dataset", np.nan)
        for dataset, g in mine.groupby("dataset"):
            per_seed = g.groupby("seed")["value"].mean()
            note = ""
            if isinstance(stand_in, str) and stand_in:
                note = ("stand-in for the paper's data" if stand_in in _sources(dataset)
                        else f"other data (the stand-in is {stand_in})")
            rows.append({**base, "dataset": dataset, "ours": per_seed.mean(),
                         "ours_sd": per_seed.std() if len(per_seed) > 1 else np.nan,
                         "seeds": len(per_seed), "note": note})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["difference"] = out["ours"] - out["paper"]
    cols = ["scenario", "method", "metric", "level", "paper", "ours", "ours_sd", "difference", "seeds",
            "dataset", "paper_dataset", "source", "note"]
    return out[cols]


def _sources(label: str) -> list[str]:
    base = str(label).split("[")[0]
    return [p for p in base.replace("|", "+").split("+") if p]


def _match_metric(rows: pd.DataFrame, metric: str, level: str) -> pd.DataFrame:
    """Our rows for a paper metric; a level (e.g. "fine") may be a suffix or a cell_type tag."""
    if not level:
        return rows[(rows["metric"] == metric) & rows["cell_type"].isna()]
    for candidate in (f"{metric}_{level}", f"{level}_{metric}"):
        hit = rows[rows["metric"] == candidate]
        if not hit.empty:
            return hit
    hit = rows[(rows["metric"] == metric) & (rows["cell_type"].astype(str) == level)]
    if not hit.empty:
        return hit
    # the level a scenario reports without a suffix (e.g. hierarchy: fine = plain, coarse = *_coarse)
    return rows[(rows["metric"] == metric) & rows["cell_type"].isna()]
