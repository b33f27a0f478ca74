"""Isolation of one method run (issue 6, "Running a method"): faults become rows, never a dead run."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from benchmark.isolation import merged_task, run_method
from methods.base import MethodUnavailable, TaskSpec
from methods.registry import MethodSpec


# test-only methods: module-level so the child process can import them by name
def _embed_ok(adata, task):
    X = adata.X.toarray()
    return {"embedding": X[:, : task.params["d"]] * task.params["scale"],
            "extras": {"seed": task.seed, "params": dict(task.params)}}


def _raises(adata, task):
    raise ValueError("planted failure in the method")


def _hangs(adata, task):
    time.sleep(600)


def _exits(adata, task):
    os._exit(3)


def _sigkill(adata, task):
    os.kill(os.getpid(), signal.SIGKILL)


def _segfault(adata, task):
    import ctypes

    ctypes.string_at(0)  # reads address 0: a real SIGSEGV, as an R crash would be


def _hogs_memory(adata, task):
    blocks = []
    for _ in range(40):
        blocks.append(np.ones(2**27 // 8))  # 128 MiB each, touched
        time.sleep(0.05)
    return {"embedding": np.zeros((adata.n_obs, 2))}


def _unavailable(adata, task):
    raise MethodUnavailable("R package foo not installed (apt-get install r-cran-foo)")


def _bad_output(adata, task):
    return {"embeding": np.zeros((adata.n_obs, 2))}


def spec(fn, **kw):
    return MethodSpec(name=fn.__name__.strip("_"), fn=fn, capabilities=("embed",), **kw)


def test_ok_returns_outputs_time_memory_and_versions(tiny_adata):
    s = spec(_embed_ok, defaults={"d": 3, "scale": 1.0})
    res = run_method(s, tiny_adata, TaskSpec(seed=7, params={"scale": 2.0}))
    assert res.status == "ok", res.error
    np.testing.assert_allclose(res.embedding, tiny_adata.X.toarray()[:, :3] * 2.0)
    # defaults merged under task params; the task's values win
    assert res.extras["params"] == {"d": 3, "scale": 2.0} and res.extras["seed"] == 7
    assert res.wall_time_s >= 0 and res.peak_memory_mb > 10
    assert res.versions["python"] and "numpy" in res.versions


def test_merged_task_keeps_task_values():
    s = spec(_embed_ok, defaults={"a": 1, "b": 2})
    t = merged_task(s, TaskSpec(params={"b": 3}))
    assert t.params == {"a": 1, "b": 3}


@pytest.mark.parametrize("fn, expected", [
    (_raises, "ValueError: planted failure"),
    (_exits, "exited with code 3"),
    (_sigkill, "SIGKILL"),
    (_segfault, "SIGSEGV"),
])
def test_faults_become_failed_results(tiny_adata, fn, expected):
    res = run_method(spec(fn), tiny_adata, TaskSpec())
    assert res.status == "failed"
    assert expected in res.error


def test_bad_output_is_a_failure(tiny_adata):
    res = run_method(spec(_bad_output), tiny_adata, TaskSpec(), isolated=False)
    assert res.status == "failed" and "unknown output key" in res.error


def test_hang_is_killed_at_time_limit(tiny_adata):
    t0 = time.perf_counter()
    res = run_method(spec(_hangs), tiny_adata, TaskSpec(time_limit=3))
    assert res.status == "failed" and "time limit exceeded" in res.error
    assert time.perf_counter() - t0 < 30


def test_memory_hog_is_killed_at_memory_limit(tiny_adata):
    res = run_method(spec(_hogs_memory), tiny_adata, TaskSpec(memory_limit_gb=0.6))
    assert res.status == "failed" and "memory limit exceeded" in res.error
    assert res.peak_memory_mb > 600


def test_missing_requirement_is_skipped_with_reason(tiny_adata):
    res = run_method(spec(_embed_ok, requires=("no_such_module_xyz",)), tiny_adata, TaskSpec())
    assert res.status == "skipped" and "pip install no_such_module_xyz" in res.error
    res = run_method(spec(_unavailable), tiny_adata, TaskSpec())
    assert res.status == "skipped" and "apt-get install r-cran-foo" in res.error


def test_unpicklable_method_fails_cleanly(tiny_adata):
    s = MethodSpec(name="lam", fn=lambda a, t: {}, capabilities=("embed",))
    res = run_method(s, tiny_adata, TaskSpec())
    assert res.status == "failed" and "isolated=False" in res.error
    res = run_method(s, tiny_adata, TaskSpec(), isolated=False)
    assert res.status == "ok"


def test_interrupted_runner_kills_the_job_child(tiny_adata, monkeypatch):
    """The child runs in its own session (Ctrl-C does not reach it): an interrupt of the runner
    while it waits must kill the child, not leave it running as an orphan."""
    import psutil

    from benchmark import isolation

    seen = {}

    def interrupted_watch(proc, *a, **kw):
        seen["pid"] = proc.pid
        time.sleep(1.0)  # the child is up and sleeping
        raise KeyboardInterrupt("runner stopped")

    monkeypatch.setattr(isolation, "_watch", interrupted_watch)
    with pytest.raises(KeyboardInterrupt):
        run_method(spec(_hangs), tiny_adata, TaskSpec(time_limit=60))
    assert not psutil.pid_exists(seen["pid"]) or psutil.Process(seen["pid"]).status() == psutil.STATUS_ZOMBIE
