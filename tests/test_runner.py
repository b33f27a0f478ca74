"""The scenario runner: faults become rows, rows are written as jobs finish, finished jobs are
cached and a re-run resumes, joblib and dask give the same results."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from benchmark import runner
from benchmark.results import read_results
from benchmark.scenarios import get_scenario
from benchmark.scenarios.base import Inputs, Scenario
from benchmark.scenarios.profiles import QUICK
from conftest import make_tiny_adata
from methods.base import TaskSpec
from methods.registry import RegistryError, register

TINY = QUICK.replace(name="tiny", method_params={})


# test-only methods (module level: the isolated child imports them by name)
@register(name="t_embed", capabilities=("embed",), defaults={"scale": 1.0}, replace=True)
def t_embed(adata, task):
    X = np.asarray(adata.X.todense())[:, :3] * task.params["scale"]
    return {"embedding": X + task.seed}


@register(name="t_raise", capabilities=("embed",), replace=True)
def t_raise(adata, task):
    raise RuntimeError("planted error")


@register(name="t_exit", capabilities=("embed",), replace=True)
def t_exit(adata, task):
    os._exit(9)


@register(name="t_missing", capabilities=("embed",), requires=("no_such_package_q",), replace=True)
def t_missing(adata, task):
    return {}


def _build(source, profile, seed):
    a = make_tiny_adata(60, 12, seed=0)
    return [Inputs("tiny", a, {"batch": a.obs["batch"].astype(str).to_numpy(), "labels": None},
                   TaskSpec(n_latent=3))]


def _score(inputs, result, profile):
    return [dict(metric="embedding_mean", value=float(np.mean(result.embedding)))]


SC = Scenario(name="t_scenario", figure="-", description="test", sources=("tiny",), build=_build,
              methods=("t_embed", "t_raise", "t_exit", "t_missing"), score=_score)


def _run(tmp_path, name="run", **kw):
    """Run the test scenario; tests of the runner's own logic run methods in-process (the
    isolation has its own tests) so they stay fast."""
    kw.setdefault("cache_dir", tmp_path / "cache")
    kw.setdefault("isolated", "methods" not in kw or "t_exit" in kw["methods"])
    return runner.run([SC], profile=TINY, run_dir=tmp_path / name, progress=False, **kw)


def test_faults_are_rows_and_the_run_goes_on(tmp_path):
    df = _run(tmp_path)
    status = df[df.metric == "status"].set_index("method")
    assert status.loc["t_raise", "status"] == "failed" and "planted error" in status.loc["t_raise", "error"]
    assert status.loc["t_exit", "status"] == "failed" and "exited with code 9" in status.loc["t_exit", "error"]
    assert status.loc["t_missing", "status"] == "skipped" and "pip install no_such_package_q" in status.loc["t_missing", "error"]
    ok = df[(df.method == "t_embed")].set_index("metric")["value"]
    a = make_tiny_adata(60, 12, seed=0)
    assert ok["embedding_mean"] == pytest.approx(np.asarray(a.X.todense())[:, :3].mean())
    assert ok["wall_time_s"] >= 0 and ok["peak_memory_mb"] > 0
    on_disk = read_results(tmp_path / "run" / "results.csv")
    assert len(on_disk) == len(df) and set(on_disk.method) == set(df.method)
    jobs = pd.read_csv(tmp_path / "run" / "jobs.csv")
    assert sorted(jobs.status) == ["failed", "failed", "ok", "skipped"]
    emb = np.load(tmp_path / "run" / "artifacts" / "t_scenario" / "tiny" / "t_embed" / "seed0" / "embedding.npz")
    assert emb["embedding"].shape == (60, 3) and set(emb["batch"]) == {"b0", "b1"}


def test_rows_are_on_disk_before_a_later_job_crashes_the_runner(tmp_path, monkeypatch):
    real = runner.execute_group
    calls = []

    def crash_second(group, *a, **kw):
        calls.append(group[0].method)
        if len(calls) == 2:
            raise KeyboardInterrupt("runner killed")
        return real(group, *a, **kw)

    monkeypatch.setattr(runner, "execute_group", crash_second)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, cache_dir=False, methods=["t_embed", "t_raise", "t_missing"])
    on_disk = read_results(tmp_path / "run" / "results.csv")
    assert set(on_disk.method) == {calls[0]}  # the first job's rows survived the crash


def test_second_run_recomputes_nothing_and_matches(tmp_path, monkeypatch):
    first = _run(tmp_path, "a", methods=["t_embed", "t_raise"])
    monkeypatch.setattr(runner, "run_method", lambda *a, **k: pytest.fail("a cached job was recomputed"))
    # only ok jobs are cached: restrict to the ok method for the second run
    second = _run(tmp_path, "b", methods=["t_embed"])
    keep = lambda d: d[d.method == "t_embed"].sort_values("metric").reset_index(drop=True)
    pd.testing.assert_frame_equal(keep(first), keep(second))
    jobs = pd.read_csv(tmp_path / "b" / "jobs.csv")
    assert jobs["cached"].tolist() == [True]
    assert (tmp_path / "b" / "artifacts" / "t_scenario" / "tiny" / "t_embed" / "seed0" / "embedding.npz").exists()


def test_changed_params_or_seed_are_recomputed(tmp_path):
    _run(tmp_path, "a", methods=["t_embed"])
    other = TINY.replace(method_params={"t_embed": {"scale": 2.0}})
    df = runner.run([SC], profile=other, methods=["t_embed"], seeds=[0, 1], run_dir=tmp_path / "b",
                    cache_dir=tmp_path / "cache", progress=False, isolated=False)
    jobs = pd.read_csv(tmp_path / "b" / "jobs.csv")
    assert not jobs["cached"].any()
    means = df[df.metric == "embedding_mean"].set_index("seed")["value"]
    assert means[1] == pytest.approx(means[0] + 1.0)


def test_resume_into_the_same_run_dir_writes_nothing_twice(tmp_path):
    _run(tmp_path, methods=["t_embed"])
    _run(tmp_path, methods=["t_embed"])
    on_disk = read_results(tmp_path / "run" / "results.csv")
    assert (on_disk.metric == "embedding_mean").sum() == 1


def test_joblib_and_dask_give_the_same_rows(tmp_path):
    distributed = pytest.importorskip("distributed")
    serial = _run(tmp_path, "s", cache_dir=False, seeds=[0, 1], methods=["t_embed", "t_raise"])
    threaded = _run(tmp_path, "j", cache_dir=False, seeds=[0, 1], methods=["t_embed", "t_raise"], n_jobs=2)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        dask = _run(tmp_path, "d", cache_dir=False, seeds=[0, 1], methods=["t_embed", "t_raise"], scheduler=client)
    cols = ["method", "seed", "metric", "value", "status"]
    norm = lambda d: (d[~d.metric.isin(["wall_time_s", "peak_memory_mb"])][cols]
                      .sort_values(cols[:3]).reset_index(drop=True))
    pd.testing.assert_frame_equal(norm(serial), norm(threaded))
    pd.testing.assert_frame_equal(norm(serial), norm(dask))


def test_unknown_names_say_the_closest():
    with pytest.raises(KeyError, match="Did you mean 'heldout'"):
        get_scenario("heldot")
    with pytest.raises(RegistryError, match="Did you mean 't_embed'"):
        runner.run([SC], methods=["t_embedd"], profile=TINY, run_dir="/nonexistent/never", progress=False)


def test_data_checksum_tracks_content():
    a, b = make_tiny_adata(seed=0), make_tiny_adata(seed=0)
    assert runner.data_checksum(a) == runner.data_checksum(b)
    b.obs["cell_type"] = b.obs["cell_type"].cat.rename_categories({"A": "Z"})
    assert runner.data_checksum(a) != runner.data_checksum(b)


def test_same_fit_in_two_scenarios_runs_the_method_once(tmp_path, monkeypatch):
    import dataclasses

    other = dataclasses.replace(SC, name="t_scenario_b")
    calls = []
    real = runner.run_method
    monkeypatch.setattr(runner, "run_method", lambda *a, **k: calls.append(1) or real(*a, **k))
    df = runner.run([SC, other], profile=TINY, methods=["t_embed"], seeds=[0, 1], run_dir=tmp_path / "r",
                    cache_dir=False, progress=False, isolated=False)
    assert len(calls) == 2  # one fit per seed, shared by both scenarios
    means = df[df.metric == "embedding_mean"].pivot_table(index="seed", columns="scenario", values="value")
    np.testing.assert_allclose(means["t_scenario"], means["t_scenario_b"])
    assert len(pd.read_csv(tmp_path / "r" / "jobs.csv")) == 4  # still one job line per scenario


def test_method_view_ignores_labels_only_for_unsupervised_methods():
    a, b = make_tiny_adata(seed=0), make_tiny_adata(seed=0)
    b.obs["cell_type"] = b.obs["cell_type"].cat.rename_categories({"A": "Z"})
    assert runner.method_view_checksum(a, uses_labels=False) == runner.method_view_checksum(b, uses_labels=False)
    assert runner.method_view_checksum(a, uses_labels=True) != runner.method_view_checksum(b, uses_labels=True)
    b.obs["batch"] = b.obs["batch"].astype(str).str.upper()
    assert runner.method_view_checksum(a, uses_labels=False) != runner.method_view_checksum(b, uses_labels=False)
    # a column the task points an unsupervised method at (de_key of a DE test) is part of its view
    c, d = make_tiny_adata(seed=0), make_tiny_adata(seed=0)
    c.obs["de_group"], d.obs["de_group"] = c.obs["cell_type"], d.obs["cell_type"].iloc[::-1].to_numpy()
    assert runner.method_view_checksum(c, False) == runner.method_view_checksum(d, False)
    assert runner.method_view_checksum(c, False, ("batch", "de_group")) != \
        runner.method_view_checksum(d, False, ("batch", "de_group"))


def test_scenario_params_override_method_params_in_one_scenario_only():
    from benchmark.scenarios.profiles import PAPER

    assert PAPER.params_for("scvi", "scaling") == {"n_epochs": 250}  # the paper's 100k-cell setting
    assert PAPER.params_for("scvi", "pair") == {"n_epochs": 400}
    assert PAPER.params_for("scvi") == {"n_epochs": 400}
    assert QUICK.params_for("scanvi", "seed_labeling") == {"n_epochs": 100, "classifier_epochs": 10}
    assert QUICK.params_for("scanvi", "pair") == {"n_epochs": 20, "classifier_epochs": 10}
    prof = TINY.replace(method_params={"t_embed": {"scale": 2.0}}, scenario_params={"t_scenario": {"t_embed": {"scale": 3.0}}})
    jobs, _ = runner.plan([SC], prof, methods=["t_embed"])
    assert [j.params for j in jobs] == [{"scale": 3.0}]


def test_each_input_is_hashed_once_not_once_per_job(tmp_path, monkeypatch):
    hashed = []
    real = runner.data_checksum
    monkeypatch.setattr(runner, "data_checksum", lambda adata: hashed.append(id(adata)) or real(adata))
    df = _run(tmp_path, cache_dir=False, methods=["t_embed", "t_raise", "t_missing"], seeds=[0])
    assert set(df["method"]) == {"t_embed", "t_raise", "t_missing"}
    assert len(hashed) == 1  # three jobs on one input: one input checksum (t_embed's view needs no other)


def test_unsupervised_fit_is_not_shared_across_different_de_groups(tmp_path, monkeypatch):
    """Same counts, cells and batches, but the DE groups differ: a DE test must run twice."""
    import dataclasses

    def build_groups(order):
        def build(source, profile, seed):
            a = make_tiny_adata(60, 12, seed=0)
            a.obs["de_group"] = a.obs["cell_type"].to_numpy()[::order]
            return [Inputs("tiny", a, {"batch": a.obs["batch"].astype(str).to_numpy(), "labels": None},
                           TaskSpec(n_latent=3, de_key="de_group"))]
        return build

    one = dataclasses.replace(SC, name="t_groups_a", build=build_groups(1))
    two = dataclasses.replace(SC, name="t_groups_b", build=build_groups(-1))
    calls = []
    real = runner.run_method
    monkeypatch.setattr(runner, "run_method", lambda *a, **k: calls.append(1) or real(*a, **k))
    runner.run([one, two], profile=TINY, methods=["t_embed"], seeds=[0], run_dir=tmp_path / "r",
               cache_dir=False, progress=False, isolated=False)
    assert len(calls) == 2


def test_parallel_jobs_share_the_cores(monkeypatch):
    """n_jobs parallel jobs get cores // n_jobs threads each (at least 1), unless the task sets its own."""
    import joblib

    from methods.base import TaskSpec

    monkeypatch.setattr(joblib, "cpu_count", lambda: 8)

    shared = TaskSpec()  # one task object is shared by the jobs of an input: it must not change
    for n_jobs, want in ((1, None), (2, 4), (3, 2), (16, 1), (-1, 1), (-7, 4)):
        js = [runner.Job("s", "d", "m", {}, 0, shared), runner.Job("s", "d", "m", {}, 0, TaskSpec(n_threads=3))]
        runner.share_cores(js, n_jobs)
        assert [j.task.n_threads for j in js] == [want, 3], n_jobs
    assert shared.n_threads is None
