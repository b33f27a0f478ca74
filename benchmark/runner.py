"""The scenario runner (issue 7, "Runner"; DESIGN.md section 3).

``run(["pair", "annotation"], run_dir=...)`` builds each scenario's inputs, runs every
(inputs, method, params, seed) job in its own process (:mod:`benchmark.isolation`), scores it,
and appends the tidy rows to ``<run_dir>/results.csv`` as each job finishes (flushed: a crash loses
nothing already computed). Finished jobs are cached by a content hash (input data + method +
params + seed + code version) so that a re-run resumes instead of recomputing. Jobs run in
parallel through joblib (``n_jobs``) or a dask.distributed cluster (``scheduler``); each job is a
pure function of its inputs, so the results are the same either way.

Per job the run folder also gets ``jobs.csv`` (one line per job: status, wall time, peak memory,
versions, whether it came from the cache) and the artifacts the reports need under
``artifacts/<scenario>/<dataset>/<method>/seed<seed>/``: ``embedding.npz`` (embedding, batch,
label arrays), ``labels.csv`` (predicted vs true) and ``de.csv`` (gene, score, truth).
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import inspect
import io
import json
import os
import re
import shutil
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd

from benchmark import results as R
from benchmark.isolation import run_method
from methods.base import MethodResult, TaskSpec

REPO_ROOT = Path(__file__).resolve().parents[1]
JOB_COLUMNS = ["job", "scenario", "dataset", "method", "seed", "status", "wall_time_s", "peak_memory_mb",
               "cached", "params_hash", "versions", "error"]


def default_cache_dir() -> Path:
    """``$HARMONIZATION_BENCH_CACHE/jobs`` or ``<repo>/.cache/jobs``."""
    return Path(os.environ.get("HARMONIZATION_BENCH_CACHE") or REPO_ROOT / ".cache") / "jobs"


@dataclass
class Job:
    """One unit of work: a method (row label ``method``) on one built input for one seed."""

    scenario: str
    dataset: str
    method: str  # row label (a MethodRun label)
    params: dict
    seed: int
    task: TaskSpec
    registry_name: str = ""
    inputs: object = field(default=None, repr=False)  # benchmark.scenarios.base.Inputs
    key: str = ""

    @property
    def params_hash(self) -> str:
        return R.params_hash({"method": self.registry_name or self.method, "params": self.params})


@dataclass
class Outcome:
    """What a finished job hands back: rows, a job-log line, artifacts (name -> bytes)."""

    rows: list
    info: dict
    artifacts: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- hashing

def data_checksum(adata) -> str:
    """sha256 of what a method sees: counts, obs, obsm, var names (content, not object identity)."""
    h = hashlib.sha256()
    _hash_counts(h, adata.X)
    h.update(pd.util.hash_pandas_object(adata.obs.astype(str), index=True).to_numpy().tobytes())
    h.update("\x00".join(map(str, adata.var_names)).encode())
    _hash_obsm(h, adata)
    return h.hexdigest()


def _hash_counts(h, X) -> None:
    for arr in ((X.indptr, X.indices, X.data) if hasattr(X, "indptr") else (X,)):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(str(X.shape).encode())


def _hash_obsm(h, adata) -> None:
    for k in sorted(adata.obsm.keys()):
        h.update(k.encode())
        h.update(pd.util.hash_pandas_object(pd.DataFrame(np.asarray(adata.obsm[k]))).to_numpy().tobytes())


def _source_digest(obj) -> str:
    try:
        return hashlib.sha256(inspect.getsource(inspect.getmodule(obj)).encode()).hexdigest()[:16]
    except (TypeError, OSError):
        return "unknown"


def code_version(scenario, spec) -> str:
    """Digest of the code a job's numbers depend on: the method's module, the scenario's module,
    the metrics package and this engine. Editing any of them invalidates only what it touches."""
    import benchmark.metrics as metrics_pkg
    from benchmark.scenarios import base as engine

    parts = [_source_digest(spec.fn), _source_digest(scenario.score), _source_digest(engine)]
    mdir = Path(metrics_pkg.__file__).parent
    for p in sorted(mdir.glob("*.py")):
        parts.append(hashlib.sha256(p.read_bytes()).hexdigest()[:16])
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def job_key(job: Job, input_checksum: str, code: str) -> str:
    blob = {"scenario": job.scenario, "dataset": job.dataset, "method": job.method,
            "registry": job.registry_name, "params": job.params, "seed": job.seed,
            "task": {k: v for k, v in job.task.to_dict().items() if k not in ("time_limit", "memory_limit_gb")},
            "inputs": input_checksum, "code": code, "truth": job.inputs.meta if job.inputs else {}}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:24]


def method_view_checksum(adata, uses_labels: bool, columns: Sequence[str] = ("batch",)) -> str:
    """sha256 of what a method's fit can depend on: counts, gene and cell names, the obs
    ``columns`` its task points it at (batch_key, de_key) and obsm; every obs column only for a
    method that uses labels. Two scenarios (or two directions of one) that hand an unsupervised
    method the same data then share one fit."""
    if uses_labels:
        return data_checksum(adata)
    h = hashlib.sha256()
    _hash_counts(h, adata.X)
    obs = [adata.obs[c].astype(str) if c in adata.obs else () for c in columns]
    for names in (adata.var_names, adata.obs_names, *obs):
        h.update("\x00".join(map(str, names)).encode() + b"\x01")
    _hash_obsm(h, adata)
    return h.hexdigest()


def fit_key(job: Job, spec, view_checksum: str, code: str) -> str:
    """Key of a job's method fit, without the scenario: (method, params, seed, what the method
    sees, what it is asked to produce, method code). Jobs with equal keys run the method once."""
    task = {k: v for k, v in job.task.to_dict().items() if k not in ("time_limit", "memory_limit_gb", "outputs")}
    task["outputs"] = sorted(o for o in job.task.outputs if spec.can(o))
    blob = {"registry": job.registry_name, "params": job.params, "seed": job.seed, "task": task,
            "inputs": view_checksum, "code": code}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:24]


# ----------------------------------------------------------------------------- one job

def fit_job(job: Job, isolated: bool = True) -> MethodResult:
    """Run the job's method on its input (isolated); a fault is a failed/skipped result."""
    from methods import registry

    try:
        spec = registry.get(job.registry_name or job.method)
    except Exception as exc:
        return MethodResult(method=job.method, status="skipped", error=str(exc))
    task = dataclasses.replace(job.task, seed=job.seed, params=dict(job.params))
    return run_method(spec, job.inputs.adata, task, isolated=isolated)


def execute_group(group: list, by_name: dict, profile, isolated: bool = True) -> list:
    """Jobs sharing one fit key (:func:`fit_key`): fit once, score each job -> [(job, Outcome)].
    Every fault becomes a failed/skipped row, never an exception."""
    res = fit_job(group[0], isolated)
    return [(job, score_job(job, res, by_name[job.scenario], profile)) for job in group]


def score_job(job: Job, res: MethodResult, scenario, profile) -> Outcome:
    """Rows, job-log line and artifacts of one job from its method's result."""
    res = dataclasses.replace(res, method=job.method)  # the row label (a variant's name), used by derived rows
    base = dict(scenario=job.scenario, dataset=job.dataset, seed=job.seed, params_hash=job.params_hash)
    info = {"job": job.key, "scenario": job.scenario, "dataset": job.dataset, "method": job.method,
            "seed": job.seed, "params_hash": job.params_hash, "cached": False}
    info.update(status=res.status, wall_time_s=res.wall_time_s, peak_memory_mb=res.peak_memory_mb,
                versions=json.dumps(res.versions, sort_keys=True), error=(res.error or "")[:500])
    if res.status != "ok":
        rows = [R.row(method=job.method, metric="status", value=None, status=res.status,
                      error=res.error or "", **base)]
        return Outcome(rows, info)
    rows = [R.row(method=job.method, metric="wall_time_s", value=res.wall_time_s, **base),
            R.row(method=job.method, metric="peak_memory_mb", value=res.peak_memory_mb, **base)]
    try:
        for r in scenario.score(job.inputs, res, profile):
            r = dict(r)
            method = r.pop("method", job.method)
            rows.append(R.row(method=method, **base, **r))
    except Exception as exc:  # a scoring fault is this job's failure, not the run's
        err = f"scoring failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}"
        info.update(status="failed", error=err[:500])
        return Outcome([R.row(method=job.method, metric="status", value=None, status="failed",
                              error=err, **base)], info)
    return Outcome(rows, info, _artifacts(job, res))


def _artifacts(job: Job, res: MethodResult) -> dict:
    """Files the reports need, as bytes (so a remote dask worker can hand them back)."""
    from benchmark.scenarios.base import embedding_of

    out = {}
    truth = job.inputs.truth
    labels = truth.get("labels")
    emb = embedding_of(res, job.task.n_latent, job.seed) if (res.embedding is not None or res.corrected is not None) else None
    if emb is not None:
        buf = io.BytesIO()
        np.savez_compressed(buf, embedding=emb.astype(np.float32), batch=np.asarray(truth["batch"]).astype(str),
                            label=np.asarray(labels if labels is not None else [""] * len(emb)).astype(str))
        out["embedding.npz"] = buf.getvalue()
    if res.labels is not None and labels is not None:
        df = pd.DataFrame({"cell": np.asarray(job.inputs.adata.obs_names), "batch": truth["batch"],
                           "true": np.asarray(labels, dtype=object), "predicted": np.asarray(res.labels, dtype=object)})
        if res.probabilities is not None:
            df["max_probability"] = np.asarray(res.probabilities.max(axis=1))
        out["labels.csv"] = df.to_csv(index=False).encode()
    if res.de is not None:
        de = res.de[["score"]].copy()
        de.index.name = "gene"
        gt = truth.get("de_truth")
        if gt is not None:
            de["truth"] = pd.Series(gt).reindex(de.index).astype(float)
        out["de.csv"] = de.reset_index().to_csv(index=False).encode()
    return out


# ----------------------------------------------------------------------------- output

class RunWriter:
    """Appends rows and job lines to the run folder as jobs finish (thread-safe, flushed)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.results_path = self.run_dir / "results.csv"
        self.jobs_path = self.run_dir / "jobs.csv"
        self._lock = threading.Lock()
        for path, cols in ((self.results_path, R.COLUMNS), (self.jobs_path, JOB_COLUMNS)):
            if not path.exists() or path.stat().st_size == 0:
                with open(path, "w", newline="") as fh:
                    csv.writer(fh).writerow(cols)

    def done_jobs(self) -> set:
        """Job keys already recorded with status ok (a resumed run does not write them twice)."""
        if not self.jobs_path.exists():
            return set()
        df = pd.read_csv(self.jobs_path, dtype=str)
        return set(df.loc[df["status"] == "ok", "job"])

    def write(self, job: Job, outcome: Outcome) -> None:
        with self._lock:
            frame = R.to_frame(outcome.rows)
            with open(self.results_path, "a", newline="") as fh:
                frame.to_csv(fh, header=False, index=False)
                fh.flush()
                os.fsync(fh.fileno())
            with open(self.jobs_path, "a", newline="") as fh:
                csv.writer(fh).writerow([outcome.info.get(c, "") for c in JOB_COLUMNS])
                fh.flush()
            if outcome.artifacts:
                d = artifact_dir(self.run_dir, job)
                d.mkdir(parents=True, exist_ok=True)
                for name, blob in outcome.artifacts.items():
                    (d / name).write_bytes(blob)

    def replace_summary(self, scenario: str, rows: list) -> None:
        """Write a scenario's across-job rows, replacing those of an earlier pass (a resumed run)."""
        with self._lock:
            df = R.read_results(self.results_path)
            names = {r["metric"] for r in rows}
            df = df[~((df["scenario"] == scenario) & df["metric"].isin(names) & df["params_hash"].isna())]
            df = pd.concat([df, R.to_frame(rows)], ignore_index=True)
            tmp = self.results_path.with_suffix(".csv.tmp")
            df.to_csv(tmp, index=False)
            os.replace(tmp, self.results_path)


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", str(part)).strip("_") or "_"


def artifact_dir(run_dir: Path, job: Job) -> Path:
    return Path(run_dir) / "artifacts" / _safe(job.scenario) / _safe(job.dataset) / _safe(job.method) / f"seed{job.seed}"


class JobCache:
    """Finished ok jobs by content hash: ``<cache_dir>/<key>/{outcome.json, artifacts...}``."""

    def __init__(self, cache_dir: Optional[Path]):
        self.dir = Path(cache_dir) if cache_dir else None

    def get(self, key: str) -> Optional[Outcome]:
        if self.dir is None or not (self.dir / key / "outcome.json").exists():
            return None
        d = self.dir / key
        blob = json.loads((d / "outcome.json").read_text())
        arts = {p.name: p.read_bytes() for p in d.iterdir() if p.name != "outcome.json"}
        return Outcome(blob["rows"], blob["info"], arts)

    def put(self, key: str, outcome: Outcome) -> None:
        if self.dir is None or outcome.info.get("status") != "ok":
            return  # failures and skips are retried on the next run
        d = self.dir / key
        tmp = self.dir / f".{key}.tmp{os.getpid()}.{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        rows = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in outcome.rows]
        (tmp / "outcome.json").write_text(json.dumps({"rows": rows, "info": outcome.info}, default=str))
        for name, blob in outcome.artifacts.items():
            (tmp / name).write_bytes(blob)
        if d.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, d)


def _from_cache(outcome: Outcome) -> Outcome:
    rows = [{k: (np.nan if v is None and k in ("value", "k", "bin", "cell_type") else v) for k, v in r.items()}
            for r in outcome.rows]
    return Outcome(rows, {**outcome.info, "cached": True}, outcome.artifacts)


# ----------------------------------------------------------------------------- planning

def plan(scenarios: Sequence, profile, *, datasets=None, methods=None, seeds=None, progress=False):
    """Build every scenario's inputs and expand them into jobs.

    Returns (jobs, problem_rows): an input that cannot be built (dataset missing, a build error)
    becomes one skipped/failed row instead of stopping the run.
    """
    from benchmark.scenarios import get_scenario

    jobs, problems = [], []
    wanted_methods = set(methods) if methods else None
    for sc in scenarios:
        sc = get_scenario(sc) if isinstance(sc, str) else sc
        sources = _sources(sc, profile, datasets)
        sc_seeds = list(seeds) if seeds is not None else list(profile.seeds_for(sc.name))
        guests = guest_runs(sc, methods)
        for source in sources:
            for seed in sc_seeds:
                try:
                    built = sc.build(source, profile, seed)
                except Exception as exc:
                    status = "skipped" if _is_unavailable(exc) else "failed"
                    problems.append(R.row(sc.name, source, "-", seed, "status", None, status=status,
                                          error=f"building inputs failed: {type(exc).__name__}: {exc}"))
                    if progress:
                        print(f"[{sc.name}] {source}: {status}: {exc}", file=sys.stderr)
                    continue
                for inp in built:
                    for run in profile.methods_for(sc.name, sc.runs()) + guests:
                        if inp.methods is not None and run.label not in inp.methods \
                                and not (run in guests and _guest_fits(run, inp, sc)):
                            continue
                        if wanted_methods and run.label not in wanted_methods and run.method not in wanted_methods:
                            continue
                        params = {**profile.params_for(run.method, sc.name), **run.params}
                        task = dataclasses.replace(inp.task, **run.task) if run.task else inp.task
                        task = dataclasses.replace(task, time_limit=task.time_limit or profile.time_limit,
                                                   memory_limit_gb=task.memory_limit_gb or profile.memory_limit_gb)
                        jobs.append(Job(sc.name, inp.dataset, run.label + inp.method_suffix, params, seed, task,
                                        registry_name=run.method, inputs=inp))
    return jobs, problems


def _sources(sc, profile, datasets) -> list:
    """The scenario's sources, restricted by the profile and by ``datasets`` (a name matches a
    source equal to it or a combined source such as ``pbmc_facs+pbmc3k`` that contains it)."""
    sources = list(profile.sources_for(sc.name, sc.sources))
    if datasets:
        wanted = set(datasets)
        sources = [s for s in sc.sources if s in wanted or wanted & set(s.split("+"))]
    return sources


def _is_unavailable(exc) -> bool:
    name = type(exc).__name__
    return isinstance(exc, (FileNotFoundError, ImportError)) or "Unavailable" in name or "NotAvailable" in name


# ----------------------------------------------------------------------------- run

def run(scenarios, *, datasets=None, methods=None, profile="quick", seeds=None, n_jobs: int = 1,
        scheduler: Optional[str] = None, cache_dir=None, run_dir, progress: bool = True,
        isolated: bool = True) -> pd.DataFrame:
    """Run ``scenarios`` ("all", a name, or a list of names/Scenario objects); return all rows.

    ``datasets`` / ``methods`` restrict the sources and the method labels; ``profile`` is
    "quick", "paper" or a :class:`benchmark.scenarios.profiles.Profile`; ``seeds`` overrides the
    profile's seeds; ``n_jobs`` parallel jobs (joblib); ``scheduler`` a dask.distributed address
    (or a ``distributed.Client``) to run the jobs on a cluster instead; ``cache_dir`` where
    finished jobs are cached (default :func:`default_cache_dir`; False disables the cache);
    ``run_dir`` the run folder (created if needed; rows are appended, so resuming into the same
    folder does not repeat jobs already recorded there).
    """
    from benchmark.scenarios import SCENARIOS, get_scenario
    from benchmark.scenarios.profiles import get_profile

    prof = get_profile(profile)
    if scenarios == "all" or scenarios == ["all"] or scenarios == ("all",):
        scenarios = list(SCENARIOS)
    elif isinstance(scenarios, str):
        scenarios = [scenarios]
    scs = [get_scenario(s) if isinstance(s, str) else s for s in scenarios]
    if methods:
        _check_methods(scs, methods)
    writer = RunWriter(run_dir)
    cache = JobCache(default_cache_dir() if cache_dir is None else (cache_dir or None))
    jobs, problems = plan(scs, prof, datasets=datasets, methods=methods, seeds=seeds, progress=progress)
    if problems:
        with writer._lock, open(writer.results_path, "a", newline="") as fh:
            R.to_frame(problems).to_csv(fh, header=False, index=False)
    by_name = {sc.name: sc for sc in scs}
    if scheduler is None and isolated:
        share_cores(jobs, n_jobs)

    # keys: one checksum per built input, one code digest per (scenario, method); fit keys
    # (without the scenario) group the jobs that can share one method run
    checksums, views, codes, fits = {}, {}, {}, {}
    from methods import registry
    for job in jobs:
        # _memo, not dict.setdefault: setdefault would hash the whole input again for every job
        ck = _memo(checksums, id(job.inputs), lambda: data_checksum(job.inputs.adata))
        try:
            spec = registry.get(job.registry_name)
            code = _memo(codes, (job.scenario, job.registry_name),
                         lambda: code_version(by_name[job.scenario], spec))
            columns = tuple(c for c in (job.task.batch_key, job.task.de_key) if c)
            view = _memo(views, (id(job.inputs), spec.uses_labels, columns),
                         lambda: method_view_checksum(job.inputs.adata, spec.uses_labels, columns))
            fits[id(job)] = fit_key(job, spec, view, _source_digest(spec.fn))
        except Exception:
            code = "unregistered"
        job.key = job_key(job, ck, code)

    done = writer.done_jobs()
    todo, all_rows = [], list(problems)
    bar = _progress(len(jobs), progress)
    for job in jobs:
        if job.key in done:
            bar.update(1)
            continue
        hit = cache.get(job.key)
        if hit is not None:
            out = _from_cache(hit)
            writer.write(job, out)
            all_rows.extend(out.rows)
            bar.update(1)
        else:
            todo.append(job)

    def finish(job, out):
        cache.put(job.key, out)
        writer.write(job, out)
        all_rows.extend(out.rows)
        bar.set_postfix_str(f"{job.scenario}/{job.method}: {out.info.get('status')}", refresh=False)
        bar.update(1)

    groups = group_by_fit(todo, fits)
    if scheduler is not None:
        _run_dask(groups, by_name, prof, scheduler, finish, isolated)
    elif n_jobs == 1 or len(groups) <= 1:
        for group in groups:
            for job, out in execute_group(group, by_name, prof, isolated):
                finish(job, out)
    else:
        _run_joblib(groups, by_name, prof, n_jobs, finish, isolated)
    bar.close()

    for sc in scs:
        if sc.summarize is not None:
            frame = R.read_results(writer.results_path)  # every job of the run, resumed ones too
            extra = [R.row(**r) for r in sc.summarize(frame[frame["scenario"] == sc.name])]
            if extra:
                writer.replace_summary(sc.name, extra)
                all_rows.extend(extra)
    return R.to_frame(all_rows)


def _memo(cache: dict, key, compute: Callable):
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def group_by_fit(todo: list, fits: dict) -> list:
    """Jobs in plan order, those with one fit key together (a job without a key alone)."""
    groups, where = [], {}
    for job in todo:
        key = fits.get(id(job))
        if key is not None and key in where:
            groups[where[key]].append(job)
            continue
        if key is not None:
            where[key] = len(groups)
        groups.append([job])
    return groups


def guest_runs(sc, methods) -> tuple:
    """Registered methods asked for by name that the scenario does not list itself (a plug-in,
    say): they join the scenario when they can produce what it scores (``sc.outputs``)."""
    from methods import registry
    from benchmark.scenarios.base import MethodRun

    listed = {r.label for r in sc.runs()} | {r.method for r in sc.runs()}
    out = []
    for name in methods or ():
        if name in listed:
            continue
        try:
            spec = registry.get(name)
        except registry.RegistryError:
            continue
        if any(spec.can(c) for c in sc.outputs):
            out.append(MethodRun(label=name, method=name))
    return tuple(out)


def _guest_fits(run, inp, sc) -> bool:
    """A guest method runs on an input restricted to some methods when it is of their kind
    (uses labels or not) — e.g. an unsupervised embedding joins the unsupervised input."""
    from methods import registry

    guest = registry.get(run.method).uses_labels
    for r in sc.runs():
        if r.label in inp.methods:
            try:
                if registry.get(r.method).uses_labels == guest:
                    return True
            except registry.RegistryError:
                continue
    return False


def _check_methods(scs, methods) -> None:
    from methods import registry
    from methods.registry import RegistryError, unknown_name_message

    known = {r.label for sc in scs for r in sc.runs()} | {r.method for sc in scs for r in sc.runs()}
    for m in methods:
        if m in known or any(r.label == m for sc in scs for r in guest_runs(sc, [m])):
            continue
        if m in registry.all_methods():
            needs = sorted({c for sc in scs for c in sc.outputs})
            raise RegistryError(f"method {m!r} can do {list(registry.get(m).capabilities)}, but the chosen "
                                f"scenarios need one of {needs}")
        raise RegistryError(unknown_name_message("method", m, known | set(registry.all_methods())))


def share_cores(jobs, n_jobs: int) -> None:
    """Give each of ``n_jobs`` parallel jobs an equal share of this machine's cores as its thread
    count (task.n_threads, where the task leaves it unset). Without it each child's torch / BLAS
    takes every core, and OpenMP's spinning workers then slow a training step several-fold."""
    import joblib

    cores = joblib.cpu_count()  # the cores this process may use (affinity, cgroup quota)
    n = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib's meaning of -1, -2, ...
    if n <= 1:
        return
    share = max(1, cores // n)
    for job in jobs:
        if job.task.n_threads is None:
            job.task = dataclasses.replace(job.task, n_threads=share)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="jobs", unit="job", disable=not enabled, dynamic_ncols=True)


def _run_joblib(groups, by_name, prof, n_jobs, finish, isolated):
    from joblib import Parallel, delayed

    # Threads suffice: each job's heavy work runs in its own child process (isolation), and the
    # parent-side scoring is numpy/scikit-learn that releases the GIL. Results stream back in
    # completion order so rows are written as jobs finish.
    par = Parallel(n_jobs=n_jobs, backend="threading", return_as="generator_unordered")
    for done in par(delayed(execute_group)(group, by_name, prof, isolated) for group in groups):
        for job, out in done:
            finish(job, out)


def _run_dask(groups, by_name, prof, scheduler, finish, isolated):
    from distributed import Client, as_completed

    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        futures = {client.submit(execute_group, group, by_name, prof, isolated, pure=False): group
                   for group in groups}
        for fut in as_completed(futures):
            group = futures[fut]
            try:
                done = fut.result()
            except Exception as exc:  # the worker itself died: still a row per job
                done = [(job, _worker_died(job, exc)) for job in group]
            for job, out in done:
                finish(job, out)
    finally:
        if not isinstance(scheduler, Client):
            client.close()


def _worker_died(job, exc) -> Outcome:
    return Outcome([R.row(job.scenario, job.dataset, job.method, job.seed, "status", None,
                          params_hash=job.params_hash, status="failed",
                          error=f"dask worker error: {type(exc).__name__}: {exc}")],
                   {"job": job.key, "scenario": job.scenario, "dataset": job.dataset,
                    "method": job.method, "seed": job.seed, "status": "failed", "cached": False,
                    "error": str(exc)[:500]})
