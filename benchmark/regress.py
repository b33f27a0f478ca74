"""``python -m benchmark regress``: CI regression of accuracy metrics against golden values.

A small, fixed, seeded set of scenarios (:data:`REGRESS_SET`: the simulator and one small real
dataset) runs through :func:`benchmark.runner.run` without the job cache, so every number is
recomputed from the code under test. Each metric point is averaged over the seeds and compared
with ``benchmarks/golden/regress.json``, written by a real run with ``--bless``: its value and a
tolerance derived from the spread over seeds (:func:`tolerance`). A point that got worse beyond
its tolerance (or changed, for a metric with no better direction), a point that disappeared, or
a job that now fails makes the command exit 1 with one line per problem naming scenario,
dataset, method, metric, the golden and the new value, and how to re-bless on purpose.

Time and memory are not compared here (they depend on the machine; asv measures them).
"""
from __future__ import annotations

import datetime as _dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from .reports.tables import aggregate, metric_direction
from .results import read_results

REPO_ROOT = Path(__file__).resolve().parent.parent
GOLDEN = REPO_ROOT / "benchmarks" / "golden" / "regress.json"
SEEDS = (0, 1, 2)
PROFILE = "quick"
#: the fixed set: (scenario, datasets, methods). Small inputs, quick profile, three seeds. The
#: simulator exercises scVI end to end (mixing and purity over k); the real CellBench pair
#: exercises loading, gene selection, PCA and the kNN label transfer (accuracy, weighted and
#: per class). scANVI is left out on purpose: its training alone would take most of the budget on
#: a 2-core machine (its behaviour is pinned by its own tests).
REGRESS_SET = (
    {"scenario": "pair", "datasets": ["simulated"], "methods": ["pca", "scvi"]},
    {"scenario": "annotation", "datasets": ["cellbench_mixology"], "methods": ["pca"]},
)
IGNORED = ("wall_time_s", "peak_memory_mb")
SPREAD_FACTOR = 3.0  # tolerance = 3 sd over seeds (see tolerance())
REL_FLOOR = 0.01  # ... but never tighter than 1% of the value
ABS_FLOOR = 1e-3  # ... nor than 0.001 (numerical noise between BLAS builds)
KEYS = ["scenario", "dataset", "method", "metric", "k", "cell_type", "bin"]
BLESS_HINT = ("If the change is intended, re-bless the golden values on purpose: "
              "`python -m benchmark regress --bless` and commit benchmarks/golden/regress.json "
              "with a note saying why.")


class RegressionFailure(AssertionError):
    pass


def tolerance(mean: float, sd: float) -> float:
    """How far a mean over the seeds may move before it counts as a regression.

    Three standard deviations of the per-seed values: a re-randomised but equally good
    implementation moves the 3-seed mean by about 0.8 sd, so 3 sd is rarely crossed by chance,
    while a real loss of accuracy (larger than the seed-to-seed noise) is caught. Floors keep a
    deterministic metric (sd = 0) from failing on last-digit noise.
    """
    sd = 0.0 if sd is None or not np.isfinite(sd) else float(sd)
    return float(max(SPREAD_FACTOR * sd, REL_FLOOR * abs(mean), ABS_FLOOR))


def run_set(run_dir: Path, *, n_jobs: int = 1, cache_dir=False, run_fn: Optional[Callable] = None,
            progress: bool = True) -> pd.DataFrame:
    """Run :data:`REGRESS_SET` into ``run_dir``; returns all its rows."""
    if run_fn is None:
        from .runner import run as run_fn
    for item in REGRESS_SET:
        run_fn([item["scenario"]], datasets=item["datasets"], methods=item["methods"], profile=PROFILE,
               seeds=list(SEEDS), n_jobs=n_jobs, cache_dir=cache_dir, run_dir=run_dir, progress=progress)
    return read_results(Path(run_dir) / "results.csv")


def points(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds of every metric point, with its tolerance."""
    agg = aggregate(results)
    agg = agg[~agg["metric"].isin(IGNORED)].copy()
    agg["tolerance"] = [tolerance(m, s) for m, s in zip(agg["mean"], agg["std"])]
    return agg.reset_index(drop=True)


def _key(rec) -> tuple:
    def norm(v, kind):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        return int(v) if kind == "int" else str(v)

    return (rec["scenario"], rec["dataset"], rec["method"], rec["metric"], norm(rec["k"], "int"),
            norm(rec["cell_type"], "str"), norm(rec["bin"], "int"))


def _where(key: tuple) -> str:
    sc, ds, m, metric, k, ct, b = key
    extra = ", ".join(f"{n}={v}" for n, v in (("k", k), ("cell_type", ct), ("bin", b)) if v is not None)
    return f"{sc}/{ds} method={m} metric={metric}" + (f" ({extra})" if extra else "")


def bless(results: pd.DataFrame, path: Path = GOLDEN, wall_time_s: Optional[float] = None) -> Path:
    """Write the golden file from a real run's rows (on purpose: ``regress --bless``)."""
    from .rundir import git_info, hardware

    bad = results[results["status"] == "failed"]
    if not bad.empty:
        first = bad.iloc[0]
        raise RegressionFailure(f"refusing to bless a run with failed jobs, e.g. {first['scenario']}/"
                                f"{first['dataset']}/{first['method']}: {str(first['error']).splitlines()[-1:]}")
    pts = points(results)
    skipped = results[results["status"] == "skipped"][["scenario", "dataset", "method", "error"]].drop_duplicates()
    doc = {
        "about": "Golden values for `python -m benchmark regress` (benchmark/regress.py). Written by a real "
                 "run with --bless; value = mean over seeds, tolerance = max(3 sd, 1% of value, 0.001).",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_info().get("sha"),
        "hardware": {k: v for k, v in hardware().items() if k in ("cpu_model", "logical_cores", "threads")},
        "wall_time_s": None if wall_time_s is None else round(wall_time_s, 1),
        "config": {"set": list(REGRESS_SET), "seeds": list(SEEDS), "profile": PROFILE},
        "skipped_when_blessed": skipped.to_dict(orient="records"),
        "points": [
            {**{k: v for k, v in zip(KEYS, _key(r))}, "value": float(r["mean"]),
             "sd": None if pd.isna(r["std"]) else float(r["std"]), "n_seeds": int(r["n_seeds"]),
             "tolerance": float(r["tolerance"])}
            for r in pts.to_dict(orient="records")
        ],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def load_golden(path: Path = GOLDEN) -> dict:
    path = Path(path)
    if not path.exists():
        raise RegressionFailure(f"no golden file at {path}: create it from a real run with "
                                f"`python -m benchmark regress --bless` and commit it")
    return json.loads(path.read_text())


def check(results: pd.DataFrame, golden: dict) -> tuple[list[str], list[str]]:
    """Compare a run with the golden values; returns (failures, notes), one line each."""
    failures, notes = [], []
    cfg = {"set": list(REGRESS_SET), "seeds": list(SEEDS), "profile": PROFILE}
    if json.loads(json.dumps(golden.get("config"))) != json.loads(json.dumps(cfg)):
        failures.append(f"the regression set changed since the golden values were blessed "
                        f"(golden: {golden.get('config')}; now: {cfg})")
    new = {_key(r): r for r in points(results).to_dict(orient="records")}
    status = results.groupby(["scenario", "dataset", "method"])["status"].agg(
        lambda s: "failed" if (s == "failed").any() else "skipped" if (s == "skipped").any() else "ok")
    reasons = results[results["status"] != "ok"].groupby(["scenario", "dataset", "method"])["error"].first()
    reported_jobs = set()
    for g in golden.get("points", []):
        key = (g["scenario"], g["dataset"], g["method"], g["metric"], g["k"], g["cell_type"], g["bin"])
        old, tol = float(g["value"]), float(g["tolerance"])
        job = key[:3]
        st = status.get(job, "absent")
        if key not in new:
            if job in reported_jobs:
                continue
            reason = str(reasons.get(job, "")).strip().splitlines()[-1:] or [""]
            if st == "skipped":  # a requirement missing on this machine (e.g. no R): say so, not a regression
                notes.append(f"not compared: {'/'.join(job)} skipped here ({reason[0]})")
                reported_jobs.add(job)
            elif st in ("failed", "absent"):
                n_old = sum(1 for p in golden["points"] if (p["scenario"], p["dataset"], p["method"]) == job)
                what = (f"job failed ({reason[0]})" if st == "failed"
                        else "no rows any more (did the scenario stop producing this input or method?)")
                failures.append(f"{'/'.join(job)}: {what}; golden had {n_old} metric points")
                reported_jobs.add(job)
            else:
                failures.append(f"{_where(key)}: missing now (golden {old:.4f})")
            continue
        value = float(new[key]["mean"])
        change = value - old
        if abs(change) <= tol:
            continue
        higher = metric_direction(key[3])
        worse = higher is None or (change < 0) == bool(higher)
        line = (f"{_where(key)}: golden {old:.4f}, now {value:.4f} (change {change:+.4f}, "
                f"tolerance ±{tol:.4f})")
        if worse:
            failures.append(("REGRESSED " if higher is not None else "CHANGED ") + line)
        else:
            notes.append("improved " + line)
    golden_keys = {(g["scenario"], g["dataset"], g["method"], g["metric"], g["k"], g["cell_type"], g["bin"])
                   for g in golden.get("points", [])}
    extra = [k for k in new if k not in golden_keys]
    if extra:
        notes.append(f"{len(extra)} metric points are new since the golden run (e.g. {_where(extra[0])})")
    return failures, notes


def main(*, bless: bool = False, golden: Optional[Path] = None, n_jobs: int = 1, keep: Optional[Path] = None,
         cache_dir=None, run_fn: Optional[Callable] = None, results_from: Optional[Path] = None,
         out=sys.stdout) -> int:
    """Run the set and compare (or bless). Exit status: 0 pass, 1 regression.

    ``results_from``: use the results.csv of a regression run already made (e.g. one kept with
    ``keep``) instead of running the set again.
    """
    golden_path = Path(golden) if golden else GOLDEN
    golden_doc = None if bless else load_golden(golden_path)  # fail before spending minutes on the run
    tmp = None
    if results_from is not None:
        path = Path(results_from) / "results.csv"
        if not path.exists():
            raise RegressionFailure(f"--results {results_from}: no results.csv there; give a folder kept with --keep")
        return _bless_or_check(read_results(path), None, golden_path, golden_doc, out)
    if keep is not None:
        run_dir = Path(keep)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RegressionFailure(f"--keep {run_dir}: folder exists and is not empty; give a new folder")
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="hb-regress-"))
        run_dir = tmp
    try:
        t0 = time.perf_counter()
        results = run_set(run_dir, n_jobs=n_jobs, cache_dir=False if cache_dir is None else cache_dir,
                          run_fn=run_fn)
        return _bless_or_check(results, time.perf_counter() - t0, golden_path, golden_doc, out)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _bless_or_check(results: pd.DataFrame, wall: Optional[float], golden_path: Path,
                    golden_doc: Optional[dict], out) -> int:
    """Bless ``results`` into ``golden_path`` (``golden_doc`` None) or check them against it."""
    took = f" ({wall:.0f} s)" if wall is not None else ""
    if golden_doc is None:
        path = bless_fn(results, golden_path, wall)
        print(f"blessed {len(load_golden(path)['points'])} golden metric points from this run{took} "
              f"into {path}; commit it with a note saying why.", file=out)
        return 0
    failures, notes = check(results, golden_doc)
    for line in notes:
        print(f"  note: {line}", file=out)
    n_points = len(golden_doc.get("points", []))
    if failures:
        print(f"regress: FAILED: {len(failures)} problem(s) among {n_points} golden metric points{took}:", file=out)
        for line in failures:
            print(f"  {line}", file=out)
        print(BLESS_HINT, file=out)
        return 1
    print(f"regress: ok: {n_points} golden metric points within tolerance{took}", file=out)
    return 0


bless_fn = bless  # main()'s parameter shadows the function name
