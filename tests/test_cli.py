"""`python -m benchmark`: help everywhere, one-line errors, run -> report, report, compare, methods."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark import cli
from benchmark.results import read_results
from reports_synthetic import make_run, synthetic_rows

REPO = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("sub", [[], ["run"], ["datasets"], ["methods"], ["report"], ["compare"], ["regress"]])
def test_help_everywhere(capsys, sub):
    with pytest.raises(SystemExit) as exc:
        cli.main([*sub, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m benchmark")
    if sub == ["run"]:
        for opt in ("--quick", "--paper", "--jobs", "--cache-dir", "--resume", "--scheduler", "--seeds",
                    "--methods", "--dataset"):
            assert opt in text
        assert "pair (Fig. 2)" in text  # the scenarios are listed


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "benchmark", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "run" in out.stdout and "regress" in out.stdout


@pytest.mark.parametrize("argv,expected", [
    (["run", "pairs"], "unknown scenario 'pairs'. Did you mean 'pair'? Valid: all, "),
    (["run", "pair", "--methods", "scvii"], "unknown method 'scvii'. Did you mean 'scvi'? Valid: "),
    (["run", "pair", "--dataset", "pbmc"], "unknown dataset 'pbmc'. Did you mean 'pbmc3k'? Valid: "),
    (["run", "pair", "--seeds", "a,b"], "--seeds must be comma-separated integers"),
    (["report", "no-such-run"], "run 'no-such-run' not found"),
])
def test_clear_one_line_errors(capsys, tmp_path, argv, expected):
    code, out, err = run_cli(capsys, "--reports-dir", str(tmp_path), *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m benchmark: error: ")
    assert expected in lines[0]
    assert not list(tmp_path.iterdir())  # a bad command line creates no run folder


def test_methods_lists_capabilities_and_availability(capsys):
    code, out, _ = run_cli(capsys, "methods", "--format", "csv")
    assert code == 0
    from io import StringIO

    table = pd.read_csv(StringIO(out))
    assert {"method", "capabilities", "requires", "runnable", "uses_labels"} <= set(table.columns)
    scvi = table.set_index("method").loc["scvi"]
    assert "embed" in scvi["capabilities"] and scvi["runnable"] == "yes"
    assert table["runnable"].map(lambda r: r == "yes" or r.startswith("no: ")).all()


def test_datasets_command(capsys):
    import datasets

    if not hasattr(datasets, "describe"):
        pytest.skip("datasets.describe() not available yet")
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0 and ("simulated" in out or "pbmc" in out)


def test_report_and_compare_commands(capsys, tmp_path):
    a = make_run(tmp_path / "20260101T000000Z-aaaaaaa", artifacts=False)
    b = make_run(tmp_path / "20260102T000000Z-bbbbbbb", artifacts=False,
                 shift={("de_bulk", "good", "auroc"): -0.2})
    code, out, _ = run_cli(capsys, "--reports-dir", str(tmp_path), "report", "--no-umap")  # latest = b
    assert code == 0 and Path(out.strip()) == b / "report.html" and (b / "report.html").exists()
    code, out, _ = run_cli(capsys, "--reports-dir", str(tmp_path), "compare", a.name, b.name,
                           "--output", str(tmp_path / "cmp.csv"))
    assert code == 0 and "| de_bulk | sim | good | auroc |" in out and "worse" in out
    assert pd.read_csv(tmp_path / "cmp.csv")["moved"].sum() == 1
    code, _, _ = run_cli(capsys, "--reports-dir", str(tmp_path), "compare", a.name, b.name, "--fail-on-change")
    assert code == 1
    code, out, _ = run_cli(capsys, "--reports-dir", str(tmp_path), "compare", a.name, a.name, "--fail-on-change")
    assert code == 0 and "Nothing moved" in out


def _fake_run(calls):
    def run(scenarios, *, datasets, methods, profile, seeds, n_jobs, scheduler, cache_dir, run_dir, progress):
        calls.append(dict(scenarios=scenarios, datasets=datasets, methods=methods, profile=profile, seeds=seeds,
                          n_jobs=n_jobs, scheduler=scheduler, cache_dir=cache_dir, run_dir=run_dir))
        rows = synthetic_rows(seeds=seeds or (0,))
        rows = rows[rows["scenario"].isin(scenarios)]
        path = Path(run_dir) / "results.csv"
        rows.to_csv(path, mode="a", header=not path.exists(), index=False)
        return rows

    return run


def test_run_builds_report_in_new_folder_and_resumes(capsys, tmp_path, monkeypatch):
    import benchmark.runner

    calls = []
    monkeypatch.setattr(benchmark.runner, "run", _fake_run(calls))
    argv = ["--reports-dir", str(tmp_path), "run", "pair", "--dataset", "simulated", "--methods", "pca,scvi",
            "--paper", "--seeds", "0,1", "--jobs", "2", "--no-cache", "--no-umap", "--no-progress"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    html = Path(out.strip().splitlines()[-1])
    run_dir = html.parent
    assert html.name == "report.html" and html.exists() and run_dir.parent == tmp_path
    assert calls[0] == dict(scenarios=["pair"], datasets=["simulated"], methods=["pca", "scvi"], profile="paper",
                            seeds=[0, 1], n_jobs=2, scheduler=None, cache_dir=False, run_dir=run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["request"]["methods"] == ["pca", "scvi"] and manifest["profile"] == "paper"
    assert manifest["seeds"] == [0, 1] and manifest["jobs"] and "numpy" in manifest["packages"]
    # the same command again in the same second: a new folder, the first untouched
    before = (run_dir / "results.csv").read_bytes()
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and Path(out.strip().splitlines()[-1]).parent != run_dir
    assert (run_dir / "results.csv").read_bytes() == before
    # resume the first run: same folder, the request is taken from its manifest
    code, out, _ = run_cli(capsys, "--reports-dir", str(tmp_path), "run", "--resume", run_dir.name, "--no-umap",
                           "--no-progress")
    assert code == 0 and Path(out.strip().splitlines()[-1]).parent == run_dir
    assert calls[-1]["methods"] == ["pca", "scvi"] and calls[-1]["run_dir"] == run_dir
    assert len(json.loads((run_dir / "manifest.json").read_text())["resumed"]) == 1


def test_run_for_real_on_the_simulator(capsys, tmp_path, monkeypatch):
    """The real runner end to end: one cheap method, one seed; rows, manifest, report."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code, out, err = run_cli(capsys, "--reports-dir", str(tmp_path), "run", "pair", "--dataset", "simulated",
                             "--methods", "pca", "--seeds", "0", "--no-cache", "--no-umap", "--no-progress")
    assert code == 0, err
    run_dir = Path(out.strip().splitlines()[-1]).parent
    res = read_results(run_dir / "results.csv")
    assert set(res["method"]) == {"pca"} and (res["status"] == "ok").all()
    mix = res[res["metric"] == "batch_entropy_mixing"]
    assert len(mix) >= 2 and mix["value"].between(0, 1).all()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["jobs"][0]["method"] == "pca" and manifest["jobs"][0]["wall_time_s"] > 0
    assert "batch_entropy_mixing" in (run_dir / "report.html").read_text()


def test_interrupted_run_is_recorded_with_how_to_resume(capsys, tmp_path, monkeypatch):
    import benchmark.runner

    def crash(*args, run_dir, **kwargs):
        (Path(run_dir) / "results.csv").write_text("partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark.runner, "run", crash)
    code, _, err = run_cli(capsys, "--reports-dir", str(tmp_path), "run", "pair", "--no-progress")
    assert code == 130 and "--resume" in err
    run_dir = next(tmp_path.iterdir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["interrupted"]["resume"] == f"python -m benchmark run --resume {run_dir.name}"
    assert (run_dir / "results.csv").read_text() == "partial"


def test_sigterm_stops_a_run_like_ctrl_c(capsys, tmp_path, monkeypatch):
    """`kill PID` during a run unwinds as KeyboardInterrupt (so the running child is killed) and
    is recorded; the previous SIGTERM handler is back afterwards."""
    import os
    import signal

    import benchmark.runner

    def killed(*args, run_dir, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(benchmark.runner, "run", killed)
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = run_cli(capsys, "--reports-dir", str(tmp_path), "run", "pair", "--no-progress")
    assert code == 130 and "--resume" in err
    manifest = json.loads((next(tmp_path.iterdir()) / "manifest.json").read_text())
    assert manifest["interrupted"]["error"] == "KeyboardInterrupt: stopped by signal SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before
