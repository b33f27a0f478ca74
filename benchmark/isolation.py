"""Run one method in its own process, with a time and a memory limit (issue 6, "Running a method").

A method is arbitrary code (PyTorch, R through rpy2, numba...): it may raise, hang, leak memory or
kill its own process (an R segfault). :func:`run_method` runs it in a fresh Python interpreter
started with :mod:`subprocess` (a clean start like multiprocessing's "spawn", but it also works
inside daemonic workers such as dask's, where multiprocessing may not start children), watches it,
and always returns a :class:`methods.base.MethodResult`:

* ``ok``: the outputs, wall time, peak memory (the child's high-water RSS, which includes an
  embedded R, or the polled RSS of its process tree when larger), versions of the tool and key packages;
* ``skipped``: a requirement is missing (``spec.availability()`` False, or the method raised
  :class:`methods.base.MethodUnavailable`); ``error`` says what to install;
* ``failed``: an exception (with its traceback tail), a time-out, a memory limit, or a dead process
  (exit code / signal, plus the tail of what it printed).

Data travel through files in a private temporary folder (pickle protocol 5: fast, keeps every
AnnData field, no copy through a pipe); the outputs come back the same way.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

import psutil

from methods.base import OUTPUT_KEYS, MethodResult, MethodUnavailable, TaskSpec

#: packages whose versions are recorded when the method imported them
KEY_PACKAGES = ("numpy", "scipy", "pandas", "anndata", "sklearn", "torch", "rpy2", "harmonypy",
                "scanorama", "pynndescent", "numba")
_POLL_S = 0.1
_LOG_TAIL_CHARS = 2000


def merged_task(spec, task: TaskSpec) -> TaskSpec:
    """``task`` with ``spec.defaults`` merged under ``task.params`` (the task's values win)."""
    return dataclasses.replace(task, params={**spec.defaults, **(task.params or {})})


def run_method(spec, adata, task: TaskSpec, *, isolated: bool = True,
               time_limit: Optional[float] = None, memory_limit_gb: Optional[float] = None,
               workdir: Optional[str] = None) -> MethodResult:
    """Run registered method ``spec`` on ``adata`` for ``task``; never raises for the method's faults.

    ``time_limit`` (s) and ``memory_limit_gb`` default to ``task.time_limit`` /
    ``task.memory_limit_gb``; None means no limit. ``isolated=False`` calls the method in this
    process (for debugging; a crash then takes the caller down and no limit is enforced).
    ``spec.fn`` must be importable by name (a module-level function) to run isolated.
    """
    available, reason = spec.availability()
    if not available:
        return MethodResult(method=spec.name, status="skipped", error=reason)
    task = merged_task(spec, task)
    time_limit = task.time_limit if time_limit is None else time_limit
    memory_limit_gb = task.memory_limit_gb if memory_limit_gb is None else memory_limit_gb
    if not isolated:
        return _as_result(spec, _call(spec, adata, task))
    with tempfile.TemporaryDirectory(prefix=f"hb-{spec.name}-", dir=workdir) as tmp:
        return _run_child(spec, adata, task, Path(tmp), time_limit, memory_limit_gb)


# ---------------------------------------------------------------- parent side

def _run_child(spec, adata, task, tmp: Path, time_limit, memory_limit_gb) -> MethodResult:
    inp, out, log = tmp / "input.pkl", tmp / "output.pkl", tmp / "child.log"
    try:
        with open(inp, "wb") as fh:
            # sys.path first, so the child can import the module that defines spec.fn
            pickle.dump(list(sys.path), fh, protocol=5)
            pickle.dump((spec, adata, task), fh, protocol=5)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        return MethodResult(method=spec.name, status="failed",
                            error=f"cannot send the job to a child process ({exc}); register a "
                                  "module-level function, or run with isolated=False")
    env = dict(os.environ)
    if task.n_threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[var] = str(task.n_threads)
    t0 = time.perf_counter()
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen([sys.executable, "-m", "benchmark.isolation", str(inp), str(out)],
                                stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        try:
            reason, polled_peak_mb = _watch(proc, t0, time_limit, memory_limit_gb)
        except BaseException:  # the runner is interrupted: its own session would keep the child alive
            _kill_tree(proc)
            raise
    wall = time.perf_counter() - t0
    if reason is None and out.exists():
        with open(out, "rb") as fh:
            payload = pickle.load(fh)
        res = _result_from_payload(spec, payload)
        # the poll sees helper processes too (sampled); the child's own high-water mark is exact
        res.peak_memory_mb = max(res.peak_memory_mb or 0.0, polled_peak_mb)
        return res
    if reason is None:
        reason = _death_reason(proc.returncode)
    tail = _tail(log)
    return MethodResult(method=spec.name, status="failed", wall_time_s=wall,
                        peak_memory_mb=polled_peak_mb, versions=_versions(spec),
                        error=reason + (f"\n--- last output ---\n{tail}" if tail else ""))


def _watch(proc: subprocess.Popen, t0: float, time_limit, memory_limit_gb):
    """Poll until the child exits; kill its whole tree past a limit. Returns (reason, peak_mb)."""
    peak = 0.0
    limit_mb = memory_limit_gb * 1024 if memory_limit_gb else None
    while proc.poll() is None:
        rss = _tree_rss_mb(proc.pid)
        peak = max(peak, rss)
        if limit_mb is not None and rss > limit_mb:
            _kill_tree(proc)
            return f"memory limit exceeded: {rss:.0f} MB > {limit_mb:.0f} MB (memory_limit_gb={memory_limit_gb})", peak
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            _kill_tree(proc)
            return f"time limit exceeded: killed after {time_limit:g} s (time_limit={time_limit:g})", peak
        time.sleep(_POLL_S)
    return None, peak


def _tree_rss_mb(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    for p in children:
        try:
            p.kill()
        except psutil.Error:
            pass
    proc.kill()
    proc.wait()


def _death_reason(code: int) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"process died ({name}) without returning a result"
    return f"process exited with code {code} without returning a result"


def _tail(path: Path) -> str:
    try:
        text = path.read_bytes()[-_LOG_TAIL_CHARS:].decode("utf-8", "replace")
    except OSError:
        return ""
    return text.strip()


def _result_from_payload(spec, payload: dict) -> MethodResult:
    if payload["status"] != "ok":
        return MethodResult(method=spec.name, status=payload["status"], error=payload["error"],
                            wall_time_s=payload["wall_time_s"], peak_memory_mb=payload["peak_memory_mb"],
                            versions=payload["versions"])
    res = _as_result(spec, payload["outputs"])
    res.wall_time_s = payload["wall_time_s"]
    res.peak_memory_mb = payload["peak_memory_mb"]
    res.versions = payload["versions"]
    return res


def _as_result(spec, outputs) -> MethodResult:
    """Wrap a method's output dict (or an already-built status payload) into a MethodResult."""
    if isinstance(outputs, MethodResult):
        return outputs
    if not isinstance(outputs, dict):
        return MethodResult(method=spec.name, status="failed",
                            error=f"method returned {type(outputs).__name__}, expected a dict with keys from {OUTPUT_KEYS}")
    unknown = [k for k in outputs if k not in OUTPUT_KEYS]
    if unknown:
        return MethodResult(method=spec.name, status="failed",
                            error=f"method returned unknown output key(s) {unknown}; valid: {list(OUTPUT_KEYS)}")
    return MethodResult(method=spec.name, status="ok", **{k: v for k, v in outputs.items() if v is not None})


def _versions(spec, modules=None) -> dict:
    import importlib.metadata

    out = {"tool": spec.tool_version(), "python": sys.version.split()[0]}
    modules = sys.modules if modules is None else modules
    for pkg in KEY_PACKAGES:
        if pkg in modules:
            dist = "scikit-learn" if pkg == "sklearn" else pkg
            try:
                out[pkg] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                pass
    if "rpy2.robjects" in modules:
        try:
            out["R"] = str(modules["rpy2.robjects"].r("R.version.string")[0])
        except Exception:  # R state unknown after a method; the version is a nicety
            pass
    return out


# ---------------------------------------------------------------- child side

def _call(spec, adata, task):
    """Call the method in this process; returns outputs dict or a non-ok MethodResult."""
    _own_peak_mb.kids_before = _kids_maxrss()
    t0 = time.perf_counter()
    try:
        outputs = spec.fn(adata, task)
        status, error = "ok", None
    except MethodUnavailable as exc:
        outputs, status, error = None, "skipped", str(exc)
    except Exception as exc:  # any fault of the method is a failed job, never a dead run
        outputs, status = None, "failed"
        error = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exc()[-_LOG_TAIL_CHARS:])
    wall = time.perf_counter() - t0
    if status != "ok":
        return MethodResult(method=spec.name, status=status, error=error, wall_time_s=wall,
                            peak_memory_mb=_own_peak_mb(), versions=_versions(spec))
    res = _as_result(spec, outputs)
    res.wall_time_s, res.peak_memory_mb, res.versions = wall, _own_peak_mb(), _versions(spec)
    return res


def _vm_hwm_kib():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _kids_maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def _own_peak_mb() -> float:
    """Peak resident memory (MB) of this process, or of a helper process the method started
    when that was larger (an embedded R is part of this process).

    Linux keeps ``ru_maxrss`` across exec, so in a freshly started child it starts at the
    parent's size; the high-water mark of this process image (VmHWM) does not.
    """
    import resource

    own = _vm_hwm_kib()
    if own is None:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = _kids_maxrss()
    # RUSAGE_CHILDREN is a maximum since start: count it only if it grew during the call
    kids = kids if kids > getattr(_own_peak_mb, "kids_before", 0) else 0
    return max(own, kids) / 1024.0


def _present(value) -> bool:
    return value is not None and not (isinstance(value, dict) and not value)


def _child_main(inp: str, out: str) -> int:
    with open(inp, "rb") as fh:
        sys.path[:] = pickle.load(fh)
        spec, adata, task = pickle.load(fh)
    res = _call(spec, adata, task)
    payload = {"status": res.status, "error": res.error, "wall_time_s": res.wall_time_s,
               "peak_memory_mb": res.peak_memory_mb, "versions": res.versions,
               "outputs": {k: getattr(res, k) for k in OUTPUT_KEYS if _present(getattr(res, k))}}
    tmp = out + ".part"
    with open(tmp, "wb") as fh:
        pickle.dump(payload, fh, protocol=5)
    os.replace(tmp, out)  # atomic: the parent never reads half a result
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1], sys.argv[2]))
