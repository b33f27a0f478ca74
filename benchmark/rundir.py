"""Versioned run folders and their manifest (DESIGN.md section 4).

Every run writes ``reports/<UTC date-time>-<short git sha>/`` and never touches an earlier
one: the folder is created with an atomic ``mkdir`` and, when another run took that name in
the same second, a numeric suffix is added (``-2``, ``-3``, ...). ``manifest.json`` records
what is needed to understand and repeat the run: command line, versions of every installed
Python package and of the R packages used, seeds, hardware, timings per job and dataset
checksums.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "manifest.json"
RESULTS = "results.csv"
#: where runs go unless told otherwise (``--reports-dir`` or this environment variable)
REPORTS_ENV = "HARMONIZATION_BENCH_REPORTS"


class RunDirError(ValueError):
    """A run folder that cannot be found or used (the message says which and what exists)."""


def default_reports_root() -> Path:
    return Path(os.environ.get(REPORTS_ENV, Path.cwd() / "reports"))


def _git(*args: str, cwd: Path = REPO_ROOT) -> Optional[str]:
    if shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(cwd: Path = REPO_ROOT) -> dict:
    """Commit of the code that ran; ``short`` is "nogit" outside a git checkout."""
    sha = _git("rev-parse", "HEAD", cwd=cwd)
    if not sha:
        return {"sha": None, "short": "nogit", "dirty": None, "branch": None}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return {
        "sha": sha,
        "short": sha[:7],
        "dirty": bool(status),  # uncommitted changes to tracked files ran too
        "branch": _git("rev-parse", "--abbrev-ref", "HEAD", cwd=cwd),
    }


def new_run_id(now: Optional[_dt.datetime] = None, short_sha: Optional[str] = None) -> str:
    """``<UTC date-time>-<short git sha>``, e.g. ``20260102T030405Z-1a2b3c4``."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    stamp = now.astimezone(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{short_sha or git_info()['short']}"


def create_run_dir(reports_root: Optional[Path] = None, run_id: Optional[str] = None) -> Path:
    """Create a brand-new run folder and return it; an existing folder is never reused.

    ``os.mkdir`` is atomic, so two runs started in the same second (even in two processes)
    cannot both get the same folder: the loser takes the next free ``-N`` suffix.
    """
    root = Path(reports_root) if reports_root is not None else default_reports_root()
    root.mkdir(parents=True, exist_ok=True)
    base = run_id or new_run_id()
    for n in range(1, 10_000):
        candidate = root / (base if n == 1 else f"{base}-{n}")
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise RunDirError(f"{root}: could not find a free run folder name for {base!r}")


def list_runs(reports_root: Optional[Path] = None) -> list[Path]:
    """Run folders (those holding a manifest or results), oldest first."""
    root = Path(reports_root) if reports_root is not None else default_reports_root()
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and ((p / MANIFEST).exists() or (p / RESULTS).exists())]
    return sorted(runs, key=lambda p: p.name)


def resolve_run_dir(run: str | Path, reports_root: Optional[Path] = None) -> Path:
    """A run given as a path, a run id under the reports folder, or ``latest``."""
    root = Path(reports_root) if reports_root is not None else default_reports_root()
    if str(run) == "latest":
        runs = list_runs(root)
        if not runs:
            raise RunDirError(f"no runs in {root}; start one with `python -m benchmark run all --quick`")
        return runs[-1]
    for candidate in (Path(run), root / str(run)):
        if candidate.is_dir():
            return candidate
    known = [p.name for p in list_runs(root)][-10:]
    hint = f" Recent runs: {', '.join(known)}" if known else f" No runs in {root} yet."
    raise RunDirError(f"run {str(run)!r} not found (neither a folder nor a run id under {root}).{hint}")


# ----------------------------------------------------------------------------- manifest parts

def package_versions() -> dict:
    """Every installed Python distribution and its version (the whole environment that ran)."""
    versions = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions[name] = dist.version
    return dict(sorted(versions.items(), key=lambda kv: kv[0].lower()))


def r_versions(packages: Iterable[str] = ()) -> Optional[dict]:
    """R's version and the versions of ``packages`` (None when R is absent)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    pkgs = sorted(set(packages))
    code = (
        "cat('R', paste(R.version$major, R.version$minor, sep='.'), '\\n');"
        f"for (p in c({', '.join(repr(p) for p in pkgs)})) "
        "cat(p, tryCatch(as.character(packageVersion(p)), error=function(e) 'absent'), '\\n')"
    )
    try:
        out = subprocess.run([rscript, "--vanilla", "-e", code], capture_output=True, text=True,
                             timeout=120, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.split() for line in out.splitlines() if line.strip()]
    info = {"version": None, "packages": {}}
    for parts in lines:
        if len(parts) >= 2 and parts[0] == "R" and info["version"] is None:
            info["version"] = parts[1]
        elif len(parts) >= 2:
            info["packages"][parts[0]] = parts[1]
    return info


def hardware() -> dict:
    """CPU, cores, RAM and the thread settings that timings depend on."""
    import psutil

    cpu_model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = {v: os.environ.get(v) for v in
               ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")}
    if "torch" in sys.modules:  # only report torch threads when torch ran (import is slow)
        threads["torch"] = sys.modules["torch"].get_num_threads()
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": affinity,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 2),
        "threads": threads,
    }


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _dataset_files(spec, cache_dir: Optional[Path]) -> dict:
    """The local files behind a registered dataset: {file name: path} (empty for simulated data)."""
    import datasets

    kind = getattr(spec, "kind", "")
    if kind == "shared" and getattr(spec, "shared_file", None):
        path = datasets.shared_data_dir() / spec.shared_file
        return {spec.shared_file: path} if path.is_file() else {}
    if kind == "paper":
        raw = datasets.resolve_cache_dir(cache_dir) / "raw" / spec.name
        return {f.filename: raw / f.filename for f in spec.files if (raw / f.filename).is_file()}
    return {}


def dataset_checksums(names: Iterable[str], cache_dir: Optional[Path] = None) -> dict:
    """sha256 of each dataset's local files (none for generated data such as the simulator)."""
    try:
        import datasets
        registry = datasets.registry
    except Exception as exc:  # the manifest must not break a finished run
        return {"error": f"datasets registry unavailable: {exc}"}
    out = {}
    for name in sorted(set(names)):
        spec = registry.get(name)
        if spec is None:
            continue
        entry = {"kind": getattr(spec, "kind", None), "files": {}}
        for fname, path in _dataset_files(spec, cache_dir).items():
            published = next((f.sha256 for f in getattr(spec, "files", ()) if f.filename == fname), None)
            entry["files"][fname] = {"path": str(path), "sha256": file_sha256(path), "published_sha256": published}
        out[name] = entry
    return out


def job_timings(results: pd.DataFrame) -> list[dict]:
    """Wall time and peak memory of each (scenario, dataset, method, seed) job from its rows."""
    if results is None or results.empty:
        return []
    keys = ["scenario", "dataset", "method", "seed"]
    jobs = results.groupby(keys, dropna=False)
    out = []
    for key, g in jobs:
        rec = dict(zip(keys, key))
        rec["seed"] = None if pd.isna(rec["seed"]) else int(rec["seed"])
        for metric in ("wall_time_s", "peak_memory_mb"):
            vals = g.loc[g["metric"] == metric, "value"]
            rec[metric] = float(vals.iloc[0]) if len(vals) else None
        statuses = set(g["status"])
        rec["status"] = "failed" if "failed" in statuses else "skipped" if "skipped" in statuses else "ok"
        out.append(rec)
    return out


def base_manifest(run_dir: Path, *, argv: Optional[list] = None, **fields) -> dict:
    """What is known when a run starts; :func:`finish_manifest` adds the rest at the end."""
    argv = list(sys.argv if argv is None else argv)
    manifest = {
        "run_id": Path(run_dir).name,
        "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "benchmark", *argv[1:]])
        if argv and argv[0].endswith(("__main__.py", "benchmark")) else " ".join(argv),
        "argv": argv,
        "cwd": str(Path.cwd()),
        "git": git_info(),
        "python": sys.version.split()[0],
        "hardware": hardware(),
    }
    manifest.update(fields)
    return manifest


def source_datasets(labels: Iterable[str]) -> list[str]:
    """Registered dataset names behind result-row dataset labels.

    Labels may combine sources and variants, e.g. ``pbmc_facs+pbmc3k`` or
    ``cellbench_mixology[removed:A549]``.
    """
    names = set()
    for label in labels:
        base = str(label).split("[")[0]
        names.update(p.strip() for p in base.replace("|", "+").split("+") if p.strip())
    return sorted(names)


def jobs_log(run_dir: Path) -> Optional[pd.DataFrame]:
    """The runner's ``jobs.csv`` (one line per job: status, wall time, peak memory, cached...)."""
    path = Path(run_dir) / "jobs.csv"
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None


def finish_manifest(manifest: dict, results: Optional[pd.DataFrame], *, r_packages: Iterable[str] = (),
                    cache_dir: Optional[Path] = None, wall_time_s: Optional[float] = None,
                    run_dir: Optional[Path] = None) -> dict:
    manifest = dict(manifest)
    manifest["finished_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    if wall_time_s is not None:
        manifest["wall_time_s"] = round(float(wall_time_s), 2)
    manifest["hardware"] = hardware()  # now with torch's thread count if torch ran
    manifest["packages"] = package_versions()
    manifest["r"] = r_versions(r_packages) if r_packages else r_versions(())
    if results is not None and not results.empty:
        manifest["seeds"] = sorted(int(s) for s in results["seed"].dropna().unique())
        manifest["datasets_used"] = sorted(results["dataset"].dropna().unique().tolist())
        manifest["jobs"] = job_timings(results)
        manifest["dataset_checksums"] = dataset_checksums(source_datasets(manifest["datasets_used"]), cache_dir)
    log = jobs_log(run_dir) if run_dir is not None else None
    if log is not None and not log.empty:  # the runner's own per-job timings win over the rows
        keep = [c for c in ("scenario", "dataset", "method", "seed", "status", "wall_time_s", "peak_memory_mb",
                            "cached", "versions") if c in log]
        jobs = json.loads(log[keep].to_json(orient="records"))
        for job in jobs:  # the runner stores versions as a JSON string
            if isinstance(job.get("versions"), str):
                try:
                    job["versions"] = json.loads(job["versions"])
                except ValueError:
                    pass
        manifest["jobs"] = jobs
    return manifest


def write_manifest(run_dir: Path, manifest: dict) -> Path:
    path = Path(run_dir) / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    os.replace(tmp, path)  # a crash mid-write leaves the previous manifest intact
    return path


def read_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}
