"""The CI regression check: tolerances, bless, pass on the golden run, fail on a planted regression.

The real regression run happens in CI through `python -m benchmark regress` (Makefile); here the
runner is replaced by a function writing a synthetic results frame, so the logic is tested fast.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from benchmark import regress
from benchmark.results import read_results
from reports_synthetic import synthetic_rows


def fake_runner(shift=None, fail=None, skip=None):
    """A stand-in for benchmark.runner.run: appends synthetic rows for the requested scenario."""
    fail, skip = set(fail or ()), set(skip or ())

    def run(scenarios, *, datasets, methods, profile, seeds, n_jobs, cache_dir, run_dir, progress):
        assert profile == regress.PROFILE and list(seeds) == list(regress.SEEDS) and cache_dir is False
        rows = synthetic_rows(seeds=seeds, shift=shift)
        rows = rows[rows["scenario"].isin(["pair", "seed_labeling"]) & (rows["status"] == "ok")]
        rows = rows.assign(scenario=rows["scenario"].replace({"seed_labeling": "annotation"}))
        rows = rows[rows["scenario"].isin(scenarios)]
        for job in fail | skip:
            hit = (rows["scenario"] == job[0]) & (rows["method"] == job[1])
            if not hit.any():
                continue
            jobs = rows.loc[hit, ["dataset", "seed"]].drop_duplicates().itertuples(index=False)
            rows = rows[~hit]
            status = "failed" if job in fail else "skipped"
            extra = pd.DataFrame([{"scenario": job[0], "dataset": ds, "method": job[1], "seed": s,
                                   "metric": "status", "value": np.nan, "k": np.nan, "cell_type": np.nan,
                                   "bin": np.nan, "params_hash": "", "status": status,
                                   "error": "R package(s) sva not installed" if status == "skipped" else "boom"}
                                  for ds, s in jobs])
            rows = pd.concat([rows, extra], ignore_index=True)
        path = run_dir / "results.csv"
        rows.to_csv(path, mode="a", header=not path.exists(), index=False)
        return rows

    return run


@pytest.fixture()
def golden(tmp_path):
    path = tmp_path / "golden.json"
    out = io.StringIO()
    assert regress.main(bless=True, golden=path, run_fn=fake_runner(), out=out) == 0
    assert "blessed" in out.getvalue()
    return path


def test_tolerance_from_seed_spread():
    assert regress.tolerance(0.8, 0.02) == pytest.approx(0.06)  # 3 sd
    assert regress.tolerance(0.8, 0.0) == pytest.approx(0.008)  # deterministic: 1% floor
    assert regress.tolerance(0.0, np.nan) == pytest.approx(regress.ABS_FLOOR)


def test_bless_writes_real_values_with_tolerances(golden):
    doc = json.loads(golden.read_text())
    assert doc["config"]["seeds"] == list(regress.SEEDS)
    pts = pd.DataFrame(doc["points"])
    assert {"wall_time_s", "peak_memory_mb"}.isdisjoint(pts["metric"])
    assert (pts["tolerance"] > 0).all() and (pts["n_seeds"] == 3).all()
    p = pts[(pts["method"] == "good") & (pts["metric"] == "weighted_accuracy")].iloc[0]
    raw = synthetic_rows()
    raw = raw[(raw["scenario"] == "seed_labeling") & (raw["method"] == "good")
              & (raw["metric"] == "weighted_accuracy")]["value"]
    assert p["value"] == pytest.approx(raw.mean()) and p["tolerance"] == pytest.approx(
        max(3 * raw.std(), 0.01 * raw.mean()))


def test_passes_on_the_golden_run(golden):
    out = io.StringIO()
    assert regress.main(golden=golden, run_fn=fake_runner(), out=out) == 0
    assert "regress: ok" in out.getvalue()


def test_fails_on_planted_regression_naming_metric_method_values(golden):
    out = io.StringIO()
    code = regress.main(golden=golden, run_fn=fake_runner(shift={("seed_labeling", "good", "weighted_accuracy"): -0.1}),
                        out=out)
    text = out.getvalue()
    assert code == 1, text
    line = next(l for l in text.splitlines() if "REGRESSED" in l)
    assert "annotation/pbmc_facs method=good metric=weighted_accuracy" in line
    old = float(line.split("golden ")[1].split(",")[0])
    new = float(line.split("now ")[1].split(" ")[0])
    assert new == pytest.approx(old - 0.1, abs=1e-3)
    assert "--bless" in text
    assert text.count("REGRESSED") == 1


def test_improvement_is_a_note_not_a_failure(golden):
    out = io.StringIO()
    assert regress.main(golden=golden, run_fn=fake_runner(shift={("pair", "bad", "knn_purity"): 0.2}), out=out) == 0
    assert "improved" in out.getvalue()


def test_failed_job_fails_and_skipped_job_is_noted(golden):
    out = io.StringIO()
    assert regress.main(golden=golden, run_fn=fake_runner(fail={("pair", "good")}), out=out) == 1
    assert "pair/sim/good: job failed (boom)" in out.getvalue()
    out = io.StringIO()
    assert regress.main(golden=golden, run_fn=fake_runner(skip={("pair", "good")}), out=out) == 0
    assert "not compared: pair/sim/good skipped here (R package(s) sva not installed)" in out.getvalue()


def test_missing_golden_file_says_how_to_create_it(tmp_path):
    with pytest.raises(regress.RegressionFailure, match="--bless"):
        regress.main(golden=tmp_path / "none.json", run_fn=fake_runner())


def test_changed_set_needs_a_new_bless(golden, monkeypatch):
    monkeypatch.setattr(regress, "SEEDS", (0, 1))
    failures, _ = regress.check(synthetic_rows(seeds=(0, 1)), json.loads(golden.read_text()))
    assert any("regression set changed" in f for f in failures)


def test_keep_folder_holds_the_run_and_can_be_rechecked(golden, tmp_path):
    keep = tmp_path / "kept"
    assert regress.main(golden=golden, run_fn=fake_runner(), keep=keep, out=io.StringIO()) == 0
    assert len(read_results(keep / "results.csv")) > 0
    out = io.StringIO()
    assert regress.main(golden=golden, results_from=keep, out=out) == 0 and "regress: ok" in out.getvalue()
    # blessing the kept rows gives the golden points a fresh run blessed
    again = keep.parent / "again.json"
    assert regress.main(bless=True, golden=again, results_from=keep, out=io.StringIO()) == 0
    assert regress.load_golden(again)["points"] == regress.load_golden(golden)["points"]
    # a job the scenario no longer produces is named
    df = read_results(keep / "results.csv")
    df[df["method"] != "bad"].to_csv(keep / "results.csv", index=False)
    out = io.StringIO()
    assert regress.main(golden=golden, results_from=keep, out=out) == 1
    assert "pair/sim/bad: no rows any more" in out.getvalue()


def test_committed_golden_file_is_well_formed():
    if not regress.GOLDEN.exists():
        pytest.skip(f"{regress.GOLDEN} not blessed yet")
    doc = json.loads(regress.GOLDEN.read_text())
    assert doc["config"] == json.loads(json.dumps(
        {"set": list(regress.REGRESS_SET), "seeds": list(regress.SEEDS), "profile": regress.PROFILE}))
    pts = pd.DataFrame(doc["points"])
    assert len(pts) > 10 and (pts["tolerance"] > 0).all() and pts["value"].notna().all()
    assert set(pts["scenario"]) == {item["scenario"] for item in regress.REGRESS_SET}
    # a regression of an accuracy-type metric must be catchable: tolerances well below the scale
    # (scVI's batch mixing after the quick profile's 30 epochs varies a lot between seeds, so
    # its tolerance is wide by construction; purity and accuracies are tight)
    frac = pts[pts["metric"].isin(["knn_purity", "accuracy", "weighted_accuracy", "per_class_accuracy"])]
    assert len(frac) >= 10 and (frac["tolerance"] < 0.1).all()
