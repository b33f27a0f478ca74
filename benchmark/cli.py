"""``python -m benchmark``: run scenarios, list datasets and methods, build and compare reports.

Sub-commands::

    run SCENARIO [SCENARIO ...] | all   run scenarios into a new reports/<run-id>/ and build its report
    datasets                            the registered datasets: shape, batches, labels, local or not
    methods                             the registered methods: capabilities, needs, runnable here or why not
    report [RUN]                        (re)build a run's report from its results.csv
    compare RUN_A RUN_B                 metrics that moved beyond their seed spread between two runs
    regress [--bless]                   CI regression of accuracy metrics against golden values

Every error a user can fix is one line naming the bad value, the valid ones and the closest.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

PROG = "python -m benchmark"


class CLIError(Exception):
    """A mistake in the command line; printed as one line, exit status 2."""


# ----------------------------------------------------------------------------- helpers

def _split(values: Optional[Sequence[str]]) -> Optional[list]:
    """``--methods a,b --methods c`` -> [a, b, c]; None when not given."""
    if not values:
        return None
    out = [v.strip() for item in values for v in str(item).split(",") if v.strip()]
    return out or None


def _seeds(text: Optional[str]) -> Optional[list]:
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise CLIError(f"--seeds must be comma-separated integers such as 0,1,2 (got {text!r})") from None
    if not seeds:
        raise CLIError("--seeds is empty; give e.g. --seeds 0,1,2")
    return seeds


def _unknown(kind: str, name: str, valid) -> CLIError:
    from methods.registry import unknown_name_message

    return CLIError(unknown_name_message(kind, name, sorted(set(valid))))


def resolve_scenarios(names: Sequence[str]) -> list:
    """Scenario names given on the command line ("all" = every scenario, in the paper's order)."""
    from .scenarios import SCENARIOS

    if not names:
        raise CLIError(f"name a scenario or 'all'; valid: {', '.join(SCENARIOS)}")
    if "all" in names:
        return list(SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            raise _unknown("scenario", n, [*SCENARIOS, "all"])
    return list(dict.fromkeys(names))


def check_datasets(scenarios: list, datasets: Optional[list]) -> None:
    """Each --dataset must be a source of at least one chosen scenario (or a part of a pair)."""
    if not datasets:
        return
    from .scenarios import SCENARIOS

    valid = set()
    for s in scenarios:
        for src in SCENARIOS[s].sources:
            valid.add(src)
            valid.update(src.split("+"))
    for d in datasets:
        if d not in valid:
            raise CLIError(
                _unknown("dataset", d, valid).args[0] + f" (datasets used by scenario(s) {', '.join(scenarios)};"
                " `python -m benchmark datasets` lists all registered datasets)")


def check_methods(scenarios: list, methods: Optional[list]) -> None:
    """Each --methods name must be a method of a chosen scenario (registry name or row label), or
    a registered method (a plug-in, say) that can produce what one of them scores."""
    if not methods:
        return
    from methods.registry import RegistryError

    from .runner import _check_methods
    from .scenarios import SCENARIOS

    try:
        _check_methods([SCENARIOS[s] for s in scenarios], methods)
    except RegistryError as exc:
        raise CLIError(f"{exc} (scenario(s) {', '.join(scenarios)})") from None


# ----------------------------------------------------------------------------- sub-commands

def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


def cmd_run(args) -> int:
    from . import rundir
    from .reports import build_report
    from .runner import run

    request = {}
    if args.resume:
        run_dir = rundir.resolve_run_dir(args.resume, args.reports_dir)
        manifest = rundir.read_manifest(run_dir)
        request = manifest.get("request", {})
    scenarios = resolve_scenarios(args.scenario or request.get("scenarios") or [])
    datasets = _split(args.dataset) or (request.get("datasets") if args.resume else None)
    methods = _split(args.methods) or (request.get("methods") if args.resume else None)
    profile = args.profile or request.get("profile") or "quick"
    seeds = _seeds(args.seeds) if args.seeds else (request.get("seeds") if args.resume else None)
    check_datasets(scenarios, datasets)
    check_methods(scenarios, methods)
    request = {"scenarios": scenarios, "datasets": datasets, "methods": methods, "profile": profile,
               "seeds": seeds, "jobs": args.jobs, "scheduler": args.scheduler}

    if args.resume:
        manifest.setdefault("resumed", []).append({"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                                   "argv": sys.argv})
    else:
        run_dir = rundir.create_run_dir(args.reports_dir)
        manifest = rundir.base_manifest(run_dir, profile=profile, request=request)
    rundir.write_manifest(run_dir, manifest)
    print(f"run folder: {run_dir}", file=sys.stderr)

    cache_dir = False if args.no_cache else args.cache_dir
    t0 = time.perf_counter()
    # `kill PID` (SIGTERM) then unwinds like Ctrl-C: the running job's child is killed and the
    # manifest says how to resume
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = run(scenarios, datasets=datasets, methods=methods, profile=profile, seeds=seeds,
                      n_jobs=args.jobs, scheduler=args.scheduler, cache_dir=cache_dir, run_dir=run_dir,
                      progress=not args.no_progress)
    except BaseException as exc:  # keep what finished; say how to continue
        manifest["interrupted"] = {"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                   "error": f"{type(exc).__name__}: {exc}",
                                   "resume": f"python -m benchmark run --resume {run_dir.name}"}
        rundir.write_manifest(run_dir, manifest)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    wall = time.perf_counter() - t0 + float(manifest.get("wall_time_s") or 0)
    manifest = rundir.finish_manifest(manifest, _all_results(run_dir, results), r_packages=_r_packages(results),
                                      wall_time_s=wall, run_dir=run_dir)
    rundir.write_manifest(run_dir, manifest)
    n_bad = int((results["status"] != "ok").sum()) if len(results) else 0
    print(f"{len(results)} result rows ({n_bad} skipped/failed jobs) in {wall:.0f} s", file=sys.stderr)
    if args.no_report:
        print(run_dir / "results.csv")
        return 0
    html = build_report(run_dir, umap=not args.no_umap, umap_max_inputs=None if args.umap_all else 1)
    print(html)
    return 0


def _all_results(run_dir: Path, fallback):
    from .results import read_results

    path = Path(run_dir) / "results.csv"
    return read_results(path) if path.exists() else fallback


def _r_packages(results) -> list:
    """R packages of the methods that ran (for the manifest's versions)."""
    try:
        from methods.registry import all_methods

        reg = all_methods()
    except Exception:
        return []
    pk = set()
    for m in set(results["method"]) if len(results) else ():
        spec = reg.get(m) or reg.get(str(m).split("[")[0].split("+")[0])
        if spec is not None:
            pk.update(spec.requires_r)
    return sorted(pk)


def cmd_datasets(args) -> int:
    import datasets

    describe = getattr(datasets, "describe", None)
    if describe is None:
        raise CLIError("this installation's `datasets` package has no describe(); update harmonization-bench")
    table = describe()
    if hasattr(table, "to_string"):
        import pandas as pd

        with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200,
                               "display.max_colwidth", 60):
            print(table.to_string(index=False) if args.format == "text" else table.to_csv(index=False))
    else:
        print(table)
    return 0


def methods_table(check_runnable: bool = True):
    """One row per registered method: capabilities, requirements, runnable here or why not."""
    import pandas as pd
    from methods.registry import all_methods

    rows = []
    for name, spec in all_methods().items():
        ok, why = spec.availability() if check_runnable else (True, "")
        needs = [*spec.requires, *(f"R:{p}" for p in spec.requires_r)]
        rows.append({"method": name, "capabilities": ",".join(spec.capabilities), "language": spec.language,
                     "uses_labels": "yes" if spec.uses_labels else "", "control": "yes" if spec.is_control else "",
                     "requires": " ".join(needs), "runnable": "yes" if ok else f"no: {why}",
                     "source": spec.source})
    return pd.DataFrame(rows)


def cmd_methods(args) -> int:
    import pandas as pd

    table = methods_table()
    if table.empty:
        print("no methods registered")
        return 0
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 250,
                           "display.max_colwidth", 90):
        print(table.to_string(index=False) if args.format == "text" else table.to_csv(index=False))
    return 0


def cmd_report(args) -> int:
    from . import rundir
    from .reports import build_report

    run_dir = rundir.resolve_run_dir(args.run, args.reports_dir)
    print(build_report(run_dir, umap=not args.no_umap, umap_max_inputs=None if args.umap_all else 1))
    return 0


def cmd_compare(args) -> int:
    from . import rundir
    from .compare import compare_runs, format_comparison

    a = rundir.resolve_run_dir(args.run_a, args.reports_dir)
    b = rundir.resolve_run_dir(args.run_b, args.reports_dir)
    table = compare_runs(a, b, z=args.z, atol=args.atol)
    print(format_comparison(table, a.name, b.name, show_all=args.all))
    if args.output:
        table.to_csv(args.output, index=False)
    moved = int(table["moved"].sum()) if len(table) else 0
    return 1 if (args.fail_on_change and moved) else 0


def cmd_regress(args) -> int:
    from .regress import RegressionFailure, main as regress_main

    try:
        return regress_main(bless=args.bless, golden=args.golden, n_jobs=args.jobs, keep=args.keep,
                            cache_dir=args.cache_dir, results_from=args.results)
    except RegressionFailure as exc:
        print(f"regress: FAILED: {exc}", file=sys.stderr)
        return 1


# ----------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="harmonization-bench: the scANVI paper's benchmark of single-cell harmonization and "
                    "annotation, with versioned reports.",
        epilog="Start with:  python -m benchmark run all --quick   (then open the printed report.html)")
    p.add_argument("--reports-dir", type=Path, default=None,
                   help="folder holding run folders (default: ./reports or $HARMONIZATION_BENCH_REPORTS)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="run scenarios into a new run folder and build its report",
                       description="Run scenarios (or 'all') into reports/<UTC date-time>-<git sha>/ and build "
                                   "report.html there. Finished jobs are cached, so a re-run (or --resume) "
                                   "does not recompute them.")
    r.add_argument("scenario", nargs="*", help="scenario name(s) or 'all' (see the list below)")
    r.add_argument("--dataset", "--datasets", action="append", metavar="NAME",
                   help="restrict to these datasets (repeat or comma-separate); a pair 'a+b' matches 'a'")
    r.add_argument("--methods", action="append", metavar="A,B", help="restrict to these methods (comma-separated)")
    prof = r.add_mutually_exclusive_group()
    prof.add_argument("--quick", dest="profile", action="store_const", const="quick",
                      help="few epochs, one seed, few k values, capped inputs (default)")
    prof.add_argument("--paper", dest="profile", action="store_const", const="paper",
                      help="the paper's settings: 3 seeds, k 10..500, full inputs, full training")
    r.add_argument("--seeds", metavar="0,1,2", help="override the profile's seeds")
    r.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="parallel jobs (default 1)")
    r.add_argument("--scheduler", metavar="ADDRESS", help="dask.distributed scheduler address to run jobs on")
    r.add_argument("--cache-dir", type=Path, metavar="PATH",
                   help="finished-job cache (default $HARMONIZATION_BENCH_CACHE/jobs or .cache/jobs)")
    r.add_argument("--no-cache", action="store_true", help="neither read nor write the job cache")
    r.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run in its own folder")
    r.add_argument("--no-report", action="store_true", help="only write results.csv (build it later with `report`)")
    r.add_argument("--no-umap", action="store_true", help="leave UMAPs out of the report (faster)")
    r.add_argument("--umap-all", action="store_true",
                   help="UMAPs for every input of every scenario (default: the first input of each)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_run, profile=None)
    try:
        from .scenarios import SCENARIOS

        r.epilog = "scenarios: " + ", ".join(f"{n} ({s.figure})" for n, s in SCENARIOS.items())
    except Exception:  # the parser must work even if a scenario module is broken
        pass

    d = sub.add_parser("datasets", help="list registered datasets (shape, batches, labels, local?)")
    d.add_argument("--format", choices=("text", "csv"), default="text")
    d.set_defaults(func=cmd_datasets)

    m = sub.add_parser("methods", help="list registered methods, what they need and whether they run here")
    m.add_argument("--format", choices=("text", "csv"), default="text")
    m.set_defaults(func=cmd_methods)

    rep = sub.add_parser("report", help="(re)build a run's report from its results.csv",
                         description="Rebuild tables, figures, report.md and report.html of a run from its "
                                     "results.csv and artifacts; prints the path of report.html.")
    rep.add_argument("run", nargs="?", default="latest", help="run id, run folder, or 'latest' (default)")
    rep.add_argument("--no-umap", action="store_true", help="leave UMAPs out (faster)")
    rep.add_argument("--umap-all", action="store_true",
                     help="UMAPs for every input of every scenario (default: the first input of each)")
    rep.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="metrics that moved beyond their seed spread between two runs",
                       description="Compare two runs metric by metric (mean over seeds). A metric 'moved' when "
                                   "|mean_B - mean_A| > Z x (largest seed sd of the two) + ATOL; rows present "
                                   "in only one run and status changes are listed too.")
    c.add_argument("run_a", help="the earlier run (id, folder or 'latest')")
    c.add_argument("run_b", help="the later run")
    c.add_argument("--z", type=float, default=2.0, help="spread multiplier (default 2)")
    c.add_argument("--atol", type=float, default=1e-6, help="absolute change always tolerated (default 1e-6)")
    c.add_argument("--all", action="store_true", help="show every metric, not only those that moved")
    c.add_argument("--output", type=Path, help="also write the full comparison as CSV")
    c.add_argument("--fail-on-change", action="store_true", help="exit 1 when any metric moved")
    c.set_defaults(func=cmd_compare)

    g = sub.add_parser("regress", help="CI regression check of accuracy metrics against golden values",
                       description="Run a small fixed seeded set of scenarios and compare every metric with "
                                   "the golden values in benchmarks/golden/regress.json; exit 1 naming each "
                                   "regressed metric. --bless re-writes the golden file on purpose.")
    g.add_argument("--bless", action="store_true", help="re-write the golden values from this run (on purpose)")
    g.add_argument("--golden", type=Path, default=None, help="golden file (default benchmarks/golden/regress.json)")
    g.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="parallel jobs")
    g.add_argument("--keep", type=Path, default=None, help="keep the regression run folder here")
    g.add_argument("--results", type=Path, default=None, metavar="FOLDER",
                   help="check (or --bless) the results of a regression run kept with --keep instead of running")
    g.add_argument("--cache-dir", type=Path, default=None,
                   help="job cache to use (default: none, so every number is recomputed)")
    g.set_defaults(func=cmd_regress)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from methods.registry import RegistryError

    from .reports import ReportError
    from .rundir import RunDirError

    try:
        return int(args.func(args) or 0)
    except (CLIError, RunDirError, RegistryError, ReportError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished jobs are kept (continue with `run --resume RUN_ID`)",
              file=sys.stderr)
        return 130
