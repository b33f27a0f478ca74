"""Reports of a run (DESIGN.md section 4): tables, figures, paper-vs-ours, report.md/.html.

``build_report(run_dir)`` reads ``<run_dir>/results.csv`` (plus ``manifest.json`` and the
``artifacts/`` the runner wrote, when present) and (re)writes, inside that run folder only:

- ``tables/<scenario>.csv`` (every aggregated point: mean, sd, seeds) and ``tables/<scenario>.md``;
- ``tables/summary_ranking.csv`` (reference rows such as ``signature_seeds`` apart, in
  ``tables/reference_rows.csv``), ``tables/paper_vs_ours.csv``, ``tables/problems.csv``;
- ``figures/*.png``;
- ``report.md`` and a self-contained ``report.html`` (figures embedded, no external assets).

It is safe to run again: it only rewrites these derived files, never results or artifacts.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import pandas as pd

from ..results import read_results
from . import figures as F
from .paper import load_paper_numbers, paper_vs_ours
from .render import Section, slug, to_html, to_md
from .tables import aggregate, problem_jobs, reference_rows, scenario_table, summary_ranking, to_markdown

log = logging.getLogger(__name__)

#: the paper's figure behind each scenario (for the reader)
PAPER_FIGURE = {
    "pair": "Fig. 2 (pair harmonization)",
    "heldout": "Fig. 3 (datasets with different cell-type composition)",
    "annotation": "Figs. 4, 9, 10 (label transfer)",
    "trajectory": "Fig. 4 (HEMATO trajectories)",
    "protein": "Fig. 5 and Supp. Fig. 11 (protein consistency)",
    "seed_labeling": "Fig. 6 and Supp. Fig. 12 (seed labeling)",
    "hierarchy": "Fig. 7 text (hierarchical labels)",
    "de_bulk": "Fig. 8 and Supp. Fig. 13 (DE against bulk)",
    "scaling": "Results, 'Rapid integration of multiple datasets' (scaling)",
}


class ReportError(ValueError):
    """A run folder a report cannot be built from (names the file and the fix)."""


def _scenario_order(present: list[str]) -> list[str]:
    try:
        from ..scenarios import SCENARIOS

        known = list(SCENARIOS)
    except Exception:  # reports must build from a results.csv alone
        known = list(PAPER_FIGURE)
    return [s for s in known if s in present] + sorted(s for s in present if s not in known)


def _scenario_text(name: str) -> str:
    parts = []
    try:
        from ..scenarios import SCENARIOS

        obj = SCENARIOS.get(name)
        doc = getattr(obj, "description", None) or ""
        if doc:
            text = " ".join(doc.strip().split()).rstrip(".") + "."
            parts.append(text[0].upper() + text[1:])
        notes = getattr(obj, "paper_notes", "")
        if notes:
            parts.append(f"What the paper reports: {' '.join(notes.split())}")
    except Exception:
        pass
    if name in PAPER_FIGURE:
        parts.append(f"Paper: {PAPER_FIGURE[name]}.")
    return " ".join(parts)


def _controls(methods) -> set:
    try:
        from methods.registry import all_methods

        reg = all_methods()
        return {m for m in methods if m in reg and reg[m].is_control}
    except Exception:
        return set()


def _references(methods) -> set:
    """Row labels that are not methods: neither a registered method nor one derived from it
    (``scvi+knn``, ``scanvi[labels:A]``), e.g. ``signature_seeds`` (the seeds' own accuracy)."""
    try:
        from methods.registry import all_methods

        reg = set(all_methods())
    except Exception:
        return set()
    return {m for m in methods if str(m).split("[")[0].split("+")[0] not in reg}


def _meta(run_dir: Path, manifest: dict, results: pd.DataFrame) -> list[tuple[str, str]]:
    hw = manifest.get("hardware", {}) or {}
    git = manifest.get("git", {}) or {}
    meta = [("run", run_dir.name)]
    if manifest.get("command"):
        meta.append(("command", manifest["command"]))
    if manifest.get("profile"):
        meta.append(("profile", str(manifest["profile"])))
    if git.get("sha"):
        meta.append(("code", f"{git['sha'][:12]}{' (uncommitted changes)' if git.get('dirty') else ''}"))
    when = " to ".join(str(manifest[k]) for k in ("started_utc", "finished_utc") if manifest.get(k))
    if when:
        meta.append(("time (UTC)", when + (f" ({manifest['wall_time_s']:.0f} s)" if manifest.get("wall_time_s") else "")))
    if hw:
        threads = ", ".join(f"{k}={v}" for k, v in (hw.get("threads") or {}).items() if v is not None)
        meta.append(("hardware", f"{hw.get('cpu_model', '?')}; {hw.get('logical_cores', '?')} cores; "
                                 f"{hw.get('ram_gb', '?')} GB RAM" + (f"; threads {threads}" if threads else "")))
    seeds = sorted(int(s) for s in results["seed"].dropna().unique())
    n_jobs = results[["scenario", "dataset", "method", "seed"]].drop_duplicates().shape[0]
    meta.append(("results", f"{len(results)} rows, {n_jobs} jobs, seeds {seeds}"))
    return meta


def build_report(run_dir: Path, *, umap: bool = True, umap_max_inputs: Optional[int] = 1,
                 title: Optional[str] = None) -> Path:
    """Build every table, figure, ``report.md`` and ``report.html`` of a run; returns the HTML path.

    ``umap_max_inputs``: UMAPs are drawn for this many inputs per scenario (None = all; the
    scaling scenario's timing inputs are never drawn).
    """
    from ..rundir import read_manifest

    run_dir = Path(run_dir)
    results_path = run_dir / "results.csv"
    if not results_path.exists():
        raise ReportError(f"{results_path} not found: a report is built from a run's results.csv "
                          f"(run `python -m benchmark run ...` first, or give the right run folder)")
    results = read_results(results_path)
    manifest = read_manifest(run_dir)
    paper = load_paper_numbers()
    tables_dir, fig_dir = run_dir / "tables", run_dir / "figures"
    tables_dir.mkdir(exist_ok=True)
    fig_dir.mkdir(exist_ok=True)
    for old in fig_dir.glob("*.png"):  # figures are derived: a rebuild replaces them all
        old.unlink()

    agg = aggregate(results)
    refs = _references(results["method"].dropna().unique())
    ranking = summary_ranking(results, controls=_controls(results["method"].unique()), references=refs)
    references = reference_rows(results, refs)
    references.to_csv(tables_dir / "reference_rows.csv", index=False)
    pvo = paper_vs_ours(results, paper)
    problems = problem_jobs(results)
    ranking.to_csv(tables_dir / "summary_ranking.csv", index=False)
    pvo.to_csv(tables_dir / "paper_vs_ours.csv", index=False)
    problems.to_csv(tables_dir / "problems.csv", index=False)

    sections = [
        Section("Summary: methods ranked", "summary",
                "scIB-style aggregate: per task (scenario x dataset) each metric is scaled to [0, 1] "
                "(1 = best) between the worst and best control method when two or more controls ran "
                "(Open Problems v2; clipped), else min-max across methods; then averaged within batch-removal and "
                "biology-conservation metrics and combined as 0.4 x batch + 0.6 x bio; 'aggregate' is the "
                "mean over tasks. 'rank: <metric>' = rank of the method's mean scaled score on that metric "
                "(1 = best). Time and memory are not scored; see each scenario.",
                tables=[("", ranking)] + ([("Reference rows (not methods; not ranked)", references)]
                                          if not references.empty else [])),
        Section("The paper's numbers beside ours", "paper-vs-ours",
                "Every number the scANVI paper publishes about a result (benchmark/reports/paper_numbers.csv, "
                "with the figure or section it comes from), our mean ± sd over seeds on the stand-in "
                "datasets, and ours minus the paper's. The paper's datasets differ from the stand-ins "
                "(see each row's paper_dataset), so differences measure both method and data. Per scenario, "
                "where and why ours differ from the paper: benchmark/reports/paper_vs_ours.md in the repository.",
                tables=[("", pvo)]),
    ]
    for scenario in _scenario_order(sorted(results["scenario"].dropna().unique())):
        sec = Section(f"Scenario: {scenario}", f"scenario-{slug(scenario)}", _scenario_text(scenario))
        rows = agg[agg["scenario"] == scenario]
        rows.to_csv(tables_dir / f"{scenario}.csv", index=False)
        wide = scenario_table(results, scenario)
        (tables_dir / f"{scenario}.md").write_text(
            f"# {scenario}\n\nMean ± sd over seeds; curves averaged over k / bins.\n\n" + to_markdown(wide))
        sec.tables.append(("Mean ± sd over seeds (curves over k / bins averaged; full points in "
                           f"tables/{scenario}.csv)", wide))
        sec.figures += _safe_figures(F.metric_bars, results, scenario, fig_dir, paper)
        sec.figures += _safe_figures(F.curves, results, scenario, fig_dir, x="k", name="over_k")
        sec.figures += _safe_figures(F.curves, results, scenario, fig_dir, x="bin", name="over_bins")
        sec.figures += _safe_figures(F.per_type_bars, results, scenario, fig_dir)
        sec.figures += _safe_figures(F.group_heatmaps, results, scenario, fig_dir)
        if scenario == "scaling":
            sec.figures += _safe_figures(F.scaling_plot, results, fig_dir)
        sec.figures += _safe_figures(F.de_roc, run_dir, fig_dir, scenario=scenario)
        if umap and scenario != "scaling":
            sec.figures += _safe_figures(F.umaps, run_dir, fig_dir, scenario=scenario, max_inputs=umap_max_inputs)
        sec_problems = problems[problems["scenario"] == scenario]
        if not sec_problems.empty:
            sec.tables.append(("Skipped or failed jobs", sec_problems))
        sections.append(sec)
    sections.append(Section("Skipped and failed jobs", "problems",
                            "Every job that did not produce results, with its reason (a skipped job lacks "
                            "a requirement; a failed one raised an error).", tables=[("", problems)]))
    versions = _key_versions(manifest)
    if versions is not None:
        sections.append(Section("Software", "software",
                                "Key versions; manifest.json lists every installed package.",
                                tables=[("", versions)]))

    title = title or f"harmonization-bench report {run_dir.name}"
    meta = _meta(run_dir, manifest, results)
    (run_dir / "report.md").write_text(to_md(title, meta, sections, run_dir))
    html_path = run_dir / "report.html"
    html_path.write_text(to_html(title, meta, sections))
    return html_path


def _safe_figures(fn, *args, **kwargs) -> list:
    """A figure that cannot be drawn is logged and left out; the rest of the report still builds."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - one broken figure must not cost the report
        log.warning("figure %s skipped: %s: %s", fn.__name__, type(exc).__name__, exc)
        return []


KEY_PACKAGES = ("torch", "numpy", "scipy", "pandas", "anndata", "scikit-learn", "pynndescent", "umap-learn",
                "harmonypy", "scanorama", "rpy2", "harmonization-bench")


def _key_versions(manifest: dict) -> Optional[pd.DataFrame]:
    pk = manifest.get("packages") or {}
    if not pk:
        return None
    lower = {k.lower(): (k, v) for k, v in pk.items()}
    rows = [{"package": lower[p][0], "version": lower[p][1]} for p in KEY_PACKAGES if p in lower]
    r = manifest.get("r") or {}
    if r.get("version"):
        rows.append({"package": "R", "version": r["version"]})
    rows += [{"package": f"R:{k}", "version": v} for k, v in sorted((r.get("packages") or {}).items())]
    return pd.DataFrame(rows)


__all__ = ["build_report", "ReportError"]
