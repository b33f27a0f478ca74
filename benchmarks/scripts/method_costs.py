"""Time and peak memory of every registered method on one shared dataset (issue 6, "the note").

Dataset: the CellBench pair CEL-seq2_3cl vs Drop-seq_3cl (``datasets.load("cellbench_mixology")``,
450 cells) on its ``--n-genes`` Seurat-v3 highly variable genes (batch-aware). Each method runs
through the harness's own isolation (``benchmark.isolation.run_method``): a fresh child process
per method, so the peak memory (``ru_maxrss`` of the child, an embedded R included) is that
method's alone. The task asks each method for everything it can do:

* embed / correct: the two batches;
* classify: Drop-seq labels hidden (CEL-seq2 labelled);
* de: cell_type H1975 vs H2228.

Reported per method: wall time of the method call (imports and data loading excluded), that time
as a ratio to the ``pca`` baseline measured in the same run (the standard for speed claims), the
CPU time of the whole child process and that above the ``random_embedding`` control (CPU time
barely moves when other jobs share the machine; wall time does), the child's peak RSS, and the
peak above the control (the child's own floor: interpreter, harness, data).

Run:  OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/scripts/method_costs.py
      [--methods seurat combat ...] [--n-genes 2000] [--time-limit 900] [--csv out.csv]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

PAIR = ("CEL-seq2_3cl", "Drop-seq_3cl")
REFERENCE = "pca"  # speed ratios are against this method, timed in the same run
FLOOR = "random_embedding"  # memory floor of a child process


def load_pair(n_genes: int):
    import datasets
    from datasets.preprocessing import select_hvg_seurat_v3

    a = datasets.load("cellbench_mixology")
    a = a[a.obs["batch"].isin(PAIR)].copy()
    for key in ("batch", "cell_type"):
        a.obs[key] = pd.Categorical(a.obs[key].astype(str))
    if n_genes and n_genes < a.n_vars:
        a = a[:, select_hvg_seurat_v3(a, n_top=n_genes, batch_key="batch")].copy()
    a.obs["visible_label"] = a.obs["cell_type"].astype(object).where(a.obs["batch"] == PAIR[0])
    return a


def task_for(spec, n_threads: int):
    from methods.base import TaskSpec

    return TaskSpec(batch_key="batch", label_key="visible_label" if spec.uses_labels else "cell_type",
                    seed=0, n_latent=10, outputs=tuple(spec.capabilities), de_key="cell_type",
                    de_groups=("H1975", "H2228"), n_threads=n_threads)


def measure(names, adata, time_limit: float, n_threads: int) -> pd.DataFrame:
    from benchmark.isolation import run_method
    from methods.registry import get

    rows = []
    for name in names:
        spec = get(name)
        print(f"running {name} ...", file=sys.stderr, flush=True)
        before = _children_cpu_s()
        res = run_method(spec, adata, task_for(spec, n_threads), time_limit=time_limit)
        rows.append({"method": name, "language": spec.language, "capabilities": ",".join(spec.capabilities),
                     "status": res.status, "wall_s": res.wall_time_s, "cpu_s": _children_cpu_s() - before,
                     "peak_mb": res.peak_memory_mb,
                     "error": (res.error or "").strip().splitlines()[0][:90] if res.error else ""})
    df = pd.DataFrame(rows).set_index("method")
    df.loc[df["status"] == "skipped", "cpu_s"] = np.nan  # no child ran
    ok = df["status"] == "ok"
    ref = df.loc[REFERENCE, "wall_s"] if REFERENCE in df.index and ok.get(REFERENCE, False) else np.nan
    floor = df.loc[FLOOR, "peak_mb"] if FLOOR in df.index and ok.get(FLOOR, False) else np.nan
    cpu_floor = df.loc[FLOOR, "cpu_s"] if FLOOR in df.index and ok.get(FLOOR, False) else np.nan
    df[f"x_{REFERENCE}"] = df["wall_s"] / ref
    df["cpu_over_floor_s"] = df["cpu_s"] - cpu_floor
    df["peak_over_floor_mb"] = df["peak_mb"] - floor
    return df


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of finished child processes so far: the method's child
    process counts once it has been waited for. Unlike wall time it barely moves when other
    jobs share the machine."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> int:
    from methods.registry import all_methods

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", nargs="*", help="method names (default: every registered method)")
    ap.add_argument("--n-genes", type=int, default=2000, help="Seurat-v3 HVGs to keep (0 = all genes)")
    ap.add_argument("--time-limit", type=float, default=900.0, help="seconds per method")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--csv", type=Path, help="also write the table here (never overwrites)")
    args = ap.parse_args(argv)

    names = list(args.methods or all_methods())
    for must in (REFERENCE, FLOOR):  # the same-run references
        if must not in names and must in all_methods():
            names.insert(0, must)
    adata = load_pair(args.n_genes)
    print(f"# cellbench_mixology {PAIR[0]} vs {PAIR[1]}: {adata.n_obs} cells x {adata.n_vars} genes; "
          f"threads={args.threads}", flush=True)
    df = measure(names, adata, args.time_limit, args.threads)
    with pd.option_context("display.width", 200, "display.max_colwidth", 90, "display.float_format", "{:.2f}".format):
        print(df.to_markdown() if _has_tabulate() else df.to_string())
    if args.csv:
        if args.csv.exists():
            raise SystemExit(f"{args.csv} exists; choose another --csv path (results are never overwritten)")
        df.to_csv(args.csv)
    return 0


def _has_tabulate() -> bool:
    import importlib.util

    return importlib.util.find_spec("tabulate") is not None


if __name__ == "__main__":
    raise SystemExit(main())
