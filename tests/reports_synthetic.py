"""A small synthetic run folder (results.csv + artifacts) for the report/compare/regress tests.

The values are drawn from a seeded generator with known structure (method "good" beats
method "bad", a control is worst), so tests can check that tables and rankings say so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.results import row, to_frame

METHODS = {"good": 0.8, "bad": 0.5, "random_control": 0.2}  # method -> quality level


def synthetic_rows(seeds=(0, 1, 2), shift: dict | None = None) -> pd.DataFrame:
    """Rows for pair, heldout, seed_labeling, trajectory, protein, de_bulk, scaling.

    ``shift`` = {(scenario, method, metric): delta} adds ``delta`` to those values (a planted
    regression for compare/regress tests).
    """
    shift = shift or {}
    rng = np.random.default_rng(0)
    rows = []

    def add(sc, ds, m, seed, metric, value, **kw):
        value = value + shift.get((sc, m, metric), 0.0)
        rows.append(row(sc, ds, m, seed, metric, value, params_hash="abc", **kw))

    for seed in seeds:
        for m, q in METHODS.items():
            noise = lambda: rng.normal(0, 0.01)  # noqa: E731
            for ds in ("sim", "pbmc3k+cite_cbmc"):
                for k in (10, 50, 100):
                    add("pair", ds, m, seed, "batch_entropy_mixing", q * 0.6 + 0.001 * np.log(k) + noise(), k=k)
                    add("pair", ds, m, seed, "knn_purity", q * 0.7 - 0.001 * np.log(k) + noise(), k=k)
                add("pair", ds, m, seed, "wall_time_s", 10 / q + noise())
            for ct in ("B", "T", "NK"):
                add("heldout", "sim", m, seed, "batch_entropy_mixing", q * 0.5 + noise(), cell_type=ct)
            add("seed_labeling", "pbmc_facs", m, seed, "weighted_accuracy", q + noise())
            add("seed_labeling", "pbmc_facs", m, seed, "accuracy", q + 0.02 + noise())
            for b in range(5):
                add("trajectory", "paul15", m, seed, "bin_batch_entropy", q * 0.5 + 0.05 * b + noise(), bin=b, k=50)
            for k in (10, 30):
                add("protein", "cite", m, seed, "protein_knn_error", (1 - q) + 0.01 * k + noise(), k=k)
                add("protein", "cite", m, seed, "protein_knn_overlap", q * 0.3 + noise(), k=k)
            for ct in ("B", "T"):
                for prot in ("CD19", "CD3"):
                    add("protein", "cite", m, seed, f"protein_mean:{prot}",
                        float((ct == "B") == (prot == "CD19")) + noise(), cell_type=ct)
            add("de_bulk", "sim", m, seed, "auroc", 0.5 + q * 0.4 + noise())
            add("de_bulk", "sim", m, seed, "kendall_tau", q * 0.3 + noise())
            for n in (1000, 4000, 16000):
                ds = f"simulated_cells{n}_batches2"
                add("scaling", ds, m, seed, "n_cells", n)
                add("scaling", ds, m, seed, "wall_time_s", (n / 1000) ** (1.0 + 0.1 * q) * (1 + noise()))
                add("scaling", ds, m, seed, "peak_memory_mb", 100 + 0.01 * n + noise())
        # the paper-named methods, so the paper-vs-ours table has something to match
        add("seed_labeling", "pbmc_facs", "scanvi", seed, "weighted_accuracy", 0.8 + noise())
        add("seed_labeling", "pbmc_facs", "scvi+knn", seed, "weighted_accuracy", 0.7 + noise())
        rows.append(row("pair", "sim", "seurat", seed, "status", np.nan, status="skipped",
                        error="R package(s) Seurat not installed"))
        rows.append(row("annotation", "sim", "scmap", seed, "status", np.nan, status="failed",
                        error="Traceback...\nValueError: boom"))
    return to_frame(rows)


def write_artifacts(run_dir: Path, seeds=(0,)) -> None:
    """embedding.npz for the pair scenario and de.csv for de_bulk, as the runner writes them."""
    rng = np.random.default_rng(1)
    n = 300
    batch = np.repeat(["a", "b"], n // 2)
    label = np.tile(["B", "T", "NK"], n // 3)
    # 2-D latents: the report draws them as they are (a >2-D latent goes through umap-learn,
    # whose numba compilation alone would cost ~20 s per test session)
    centers = {"B": (0, 0), "T": (4, 0), "NK": (0, 4)}
    for seed in seeds:
        for m, q in METHODS.items():
            emb = np.array([centers[c] for c in label], float) + rng.normal(0, 1 - q, (n, 2))
            emb[:, 1] += (batch == "b") * (1 - q) * 4  # worse methods keep more batch effect
            d = Path(run_dir) / "artifacts" / "pair" / "sim" / m / f"seed{seed}"
            d.mkdir(parents=True, exist_ok=True)
            np.savez(d / "embedding.npz", embedding=emb.astype(np.float32), batch=batch, cell_type=label)
            truth = rng.random(200) < 0.2
            score = truth * q * 2 + rng.normal(0, 1, 200)
            d = Path(run_dir) / "artifacts" / "de_bulk" / "sim" / m / f"seed{seed}"
            d.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"gene": [f"g{i}" for i in range(200)], "score": score, "truth": truth}).to_csv(
                d / "de.csv", index=False)


def make_run(run_dir: Path, seeds=(0, 1, 2), shift=None, artifacts=True) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    synthetic_rows(seeds, shift).to_csv(run_dir / "results.csv", index=False)
    if artifacts:
        write_artifacts(run_dir)
    return run_dir
