"""``compare RUN_A RUN_B``: which metrics moved beyond their seed spread between two runs.

Each metric point (scenario, dataset, method, metric, k, cell_type, bin) is averaged over seeds
in each run. It *moved* when ``|mean_B - mean_A| > z * spread + atol`` where ``spread`` is the
larger of the two runs' standard deviations over seeds (0 for a single seed, so with one seed
any change beyond ``atol`` counts: same seed = same numbers on CPU). Points present in only one
run and jobs whose status changed (ok -> failed, ...) are reported as well.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .reports.tables import GROUP_KEYS, aggregate, metric_direction, to_markdown
from .results import read_results

IGNORED = ("wall_time_s", "peak_memory_mb")  # machine-dependent; compare them with asv, not here


def _status(df: pd.DataFrame) -> pd.Series:
    keys = ["scenario", "dataset", "method"]
    worst = {"ok": 0, "skipped": 1, "failed": 2}
    s = df.assign(rank=df["status"].map(worst)).groupby(keys)["rank"].max()
    return s.map({v: k for k, v in worst.items()})


def compare_frames(a: pd.DataFrame, b: pd.DataFrame, *, z: float = 2.0, atol: float = 1e-6,
                   ignore=IGNORED) -> pd.DataFrame:
    """One row per metric point with mean/sd in each run, the change, and whether it moved."""
    ga, gb = aggregate(a), aggregate(b)
    ga, gb = ga[~ga["metric"].isin(ignore)], gb[~gb["metric"].isin(ignore)]
    keys = GROUP_KEYS
    # NaN keys (k, cell_type, bin) must match each other in the merge
    fill = {"k": -1, "bin": -1, "cell_type": "\x00"}
    m = ga.fillna(fill).merge(gb.fillna(fill), on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    for col, v in fill.items():
        m[col] = m[col].replace(v, np.nan)
    spread = np.fmax(m["std_a"].fillna(0), m["std_b"].fillna(0))
    m["change"] = m["mean_b"] - m["mean_a"]
    m["spread"] = spread
    m["moved"] = (m["_merge"] == "both") & (m["change"].abs() > z * spread + atol)
    direction = [metric_direction(x) for x in m["metric"]]
    unknown = np.array([d is None for d in direction])
    higher = np.array([d is not False for d in direction])
    better = np.where(unknown, "", np.where((m["change"] > 0).to_numpy() == higher, "better", "worse"))
    m["verdict"] = np.where(m["_merge"] == "left_only", "only in A",
                            np.where(m["_merge"] == "right_only", "only in B",
                                     np.where(m["moved"], better, "")))
    m["verdict"] = np.where(m["moved"] & (m["verdict"] == ""), "changed", m["verdict"])
    out = m.rename(columns={"n_seeds_a": "seeds_a", "n_seeds_b": "seeds_b"})
    cols = [*keys, "mean_a", "std_a", "seeds_a", "mean_b", "std_b", "seeds_b", "change", "spread", "moved",
            "verdict"]
    out = out[cols]
    # status changes per job group: a method that now fails is the biggest move of all
    sa, sb = _status(a), _status(b)
    st = pd.concat([sa.rename("status_a"), sb.rename("status_b")], axis=1).reset_index()
    st = st[st["status_a"] != st["status_b"]]
    if not st.empty:
        extra = st.assign(metric="status", moved=True,
                          verdict=[f"status {x} -> {y}" for x, y in zip(st["status_a"].fillna("absent"),
                                                                        st["status_b"].fillna("absent"))])
        out = pd.concat([out, extra.drop(columns=["status_a", "status_b"])], ignore_index=True)
    return out.sort_values(["moved", "scenario", "dataset", "method", "metric"],
                           ascending=[False, True, True, True, True]).reset_index(drop=True)


def compare_runs(run_a: Path, run_b: Path, **kw) -> pd.DataFrame:
    return compare_frames(read_results(Path(run_a) / "results.csv"), read_results(Path(run_b) / "results.csv"), **kw)


def format_comparison(table: pd.DataFrame, name_a: str = "A", name_b: str = "B", show_all: bool = False) -> str:
    moved = table[table["moved"] | table["verdict"].isin(["only in A", "only in B"])]
    head = (f"A = {name_a}\nB = {name_b}\n{int(table['moved'].sum())} of {len(table)} metric points moved "
            f"beyond their seed spread; {int((table['verdict'] == 'only in A').sum())} only in A, "
            f"{int((table['verdict'] == 'only in B').sum())} only in B.\n")
    shown = table if show_all else moved
    if shown.empty:
        return head + "Nothing moved.\n"
    cols = [c for c in ["scenario", "dataset", "method", "metric", "k", "cell_type", "bin", "mean_a", "mean_b",
                        "change", "spread", "verdict"] if c in shown]
    view = shown[cols].copy()
    for c in ("k", "bin"):
        view[c] = view[c].map(lambda v: "" if pd.isna(v) else str(int(v)))
    view["cell_type"] = view["cell_type"].fillna("")
    return head + "\n" + to_markdown(view, floatfmt=".4f")
