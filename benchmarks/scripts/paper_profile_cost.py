"""Estimated cost of ``run all --paper`` on this machine (benchmark/reports/paper_vs_ours.md).

Jobs and shared fits per scenario come from the runner's own ``plan()`` of the paper profile.
scVI/scANVI cost = epochs x cells x a measured rate (seconds per epoch per 1,000 cells, e.g. from
a finished paper-profile run); other methods: the median wall time per method of a quick run's
``jobs.csv`` (inputs capped at ~2,000 cells), scaled linearly by cells (a lower bound for methods
that grow faster, such as MNN and Seurat).

    .venv/bin/python benchmarks/scripts/paper_profile_cost.py --quick-jobs reports/<quick run>/jobs.csv \
        --scvi-rate 0.54 --scanvi-rate 0.94 [--out cost.csv]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

NEURAL = ("scvi", "scanvi", "scanvi_joint", "scanvi_hierarchical")


def main(argv=None) -> None:
    import pandas as pd

    from benchmark import runner
    from benchmark.scenarios import SCENARIOS, get_scenario
    from benchmark.scenarios.profiles import PAPER
    from benchmark.scenarios.scaling import sizes
    from methods import registry

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick-jobs", type=Path, required=True, help="jobs.csv of a `run all --quick` folder")
    p.add_argument("--scvi-rate", type=float, required=True, help="scVI s per epoch per 1,000 cells")
    p.add_argument("--scanvi-rate", type=float, required=True, help="scANVI s per epoch per 1,000 cells")
    p.add_argument("--out", type=Path, default=None, help="write the per-job estimates as CSV here")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help="comma-separated (default all; planning de_bulk trains the joint scVI of its inputs)")
    args = p.parse_args(argv)

    rates = {m: args.scvi_rate if m == "scvi" else args.scanvi_rate for m in NEURAL}
    quick = pd.read_csv(args.quick_jobs)
    median_s = quick.groupby(quick["method"].str.split("[").str[0])["wall_time_s"].median().to_dict()

    def estimate(method, n_cells, params):
        m = method.split("[")[0]
        if m in rates:
            return (params.get("n_epochs") or 400) * n_cells / 1000 * rates[m], True
        return median_s.get(m, 10.0) * max(n_cells, 500) / 2000, False

    rows = []
    wanted = args.scenarios.split(",")
    for name in [s for s in wanted if s != "scaling"]:
        jobs, _ = runner.plan([name], PAPER)
        for j in jobs:
            spec = registry.get(j.registry_name)
            columns = tuple(c for c in (j.task.batch_key, j.task.de_key) if c)  # as runner.run keys fits
            fit = runner.fit_key(j, spec, runner.method_view_checksum(j.inputs.adata, spec.uses_labels, columns), "x")
            t, neural = estimate(j.registry_name, j.inputs.adata.n_obs, j.params)
            rows.append(dict(scenario=name, method=j.registry_name, n=j.inputs.adata.n_obs, neural=neural,
                             est_s=t, fit=fit))
    for n, b in sizes(PAPER) if "scaling" in wanted else ():
        for m in get_scenario("scaling").methods:
            for seed in PAPER.seeds:
                t, neural = estimate(m, n, PAPER.params_for(m, "scaling"))
                rows.append(dict(scenario="scaling", method=m, n=n, neural=neural, est_s=t, fit=f"{m}|{n}|{b}|{seed}"))
    df = pd.DataFrame(rows)
    df["shared"] = df.duplicated("fit")  # one `run all` fits each fit key once
    if args.out:
        df.to_csv(args.out, index=False)
    fits = df[~df["shared"]]
    table = df.groupby("scenario").agg(jobs=("fit", "size"), neural_jobs=("neural", "sum"))
    table["fits"] = fits.groupby("scenario").size()
    table["est_h"] = fits.groupby("scenario")["est_s"].sum() / 3600
    table["neural_h"] = fits[fits["neural"]].groupby("scenario")["est_s"].sum() / 3600
    print(table.fillna(0).round(2).to_string())
    print(f"total: {len(df)} jobs, {len(fits)} fits, estimated {fits['est_s'].sum() / 3600:.1f} h with one job")


if __name__ == "__main__":
    main()
