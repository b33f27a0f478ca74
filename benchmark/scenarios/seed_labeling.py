"""Seed labeling in one dataset (paper, "Cell type annotation in a single dataset based on
'seed' labels", Figure 6).

Cells are scored with marker signatures (normalise by total UMIs, log(1 + 1e4 x), z-score per
gene, signed average over the signature's genes: paper, Online Methods "Signature calculus");
the top 50 cells per subset are the seeds (a cell that tops two lists goes to its higher z-score)
and every other cell is labelled by scANVI's classifier, a kNN classifier (k = 10) and k-means
with a majority vote inside each cluster on the scVI and on the PCA latent (the paper's Seurat
PCA). Score: weighted accuracy on the non-seed cells; the seeds' own accuracy is reported as
method ``signature_seeds``.

Inputs: ``pbmc_facs`` (the paper's four T-cell subsets, signatures in
``signatures/pbmc_facs.json``) and the simulator (signatures = each type's true markers).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from methods.base import TaskSpec

from .base import (SIMULATED, Inputs, MethodRun, Scenario, classification_rows, embedding_of, kmeans_transfer,
                   knn_transfer, source_label, truth_of)
from .inputs import load, prepare, simulate

SIGNATURES = Path(__file__).with_name("signatures")
#: PCA on the genes the input carries (the paper's dispersion selection): the adapter's default
#: seurat_v3 selection fails to fit its loess on the 4 T-cell subsets of pbmc_facs
#: scanvi = Algorithm 2 (alternating), the paper's single-dataset scheme; scanvi_joint =
#: Algorithm 1, which lets the seeds shape the latent from the start (DEVELOPERS.md, Findings; on pbmc_facs, 200
#: epochs, seeds 0/1/2: 0.841/0.841/0.858 weighted accuracy vs k-means on scVI 0.779/0.777/0.834 and
#: ~0.78 alternating: benchmarks/scripts/seed_labeling_pbmc_facs.py). Both need ~200 epochs on these
#: 888 cells: 20 epochs gave ~0.47 (benchmark/reports/paper_vs_ours.md).
METHODS = ("scanvi", "scanvi_joint", "scvi", MethodRun("pca", "pca", params={"genes": "all"}))
PAPER = {("scanvi", "weighted_accuracy"): 0.84, ("scvi+knn", "weighted_accuracy"): 0.73,
         ("pca+knn", "weighted_accuracy"): 0.71, ("scvi+kmeans", "weighted_accuracy"): 0.74,
         ("pca+kmeans", "weighted_accuracy"): 0.72}


def signature_scores(X, genes, signatures: dict) -> pd.DataFrame:
    """Cells x signatures: signed mean of per-gene z-scores of log(1 + 1e4 x / total)."""
    X = sp.csr_matrix(X, dtype=np.float64)
    lib = np.asarray(X.sum(1)).ravel()
    index = {g: i for i, g in enumerate(genes)}
    out = {}
    for name, sig in signatures.items():
        cols, signs = [], []
        for sign, key in ((1.0, "up"), (-1.0, "down")):
            for g in sig.get(key, []):
                if g in index:
                    cols.append(index[g])
                    signs.append(sign)
        if not cols:
            raise ValueError(f"signature {name!r}: none of its genes is in the data")
        E = np.log1p(X[:, cols].toarray() / np.maximum(lib, 1)[:, None] * 1e4)
        sd = E.std(0)
        Z = (E - E.mean(0)) / np.where(sd > 0, sd, 1.0)
        out[name] = (Z * np.asarray(signs)).mean(1)
    return pd.DataFrame(out)


def pick_seeds(scores: pd.DataFrame, n: int) -> np.ndarray:
    """Seed label per cell (NaN = not a seed): the top ``n`` of each signature, ties to the
    signature where the cell's score is highest."""
    seeds = np.full(len(scores), np.nan, dtype=object)
    best = scores.to_numpy().argmax(1)
    for j, name in enumerate(scores.columns):
        top = np.argsort(-scores[name].to_numpy(), kind="stable")[:n]
        for i in top:
            if pd.isna(seeds[i]) or best[i] == j:
                seeds[i] = name
    return seeds


def seed_input(source, profile):
    if source == SIMULATED:
        a = simulate(n_cells=profile.sim_cells, n_genes=profile.sim_genes, n_batches=1, n_cell_types=4,
                     seed=0, trajectory=False, hidden_types=None)
        signatures = {t: {"up": list(m)[:5]} for t, m in a.uns["markers"].items()}
        return a, signatures
    sig = json.loads((SIGNATURES / f"{source}.json").read_text())
    a = load(source)
    a = a[a.obs["cell_type"].astype(str).isin(sig["_cells"]).to_numpy()].copy()
    return a, {k: v for k, v in sig.items() if not k.startswith("_")}


def build(source, profile, seed):
    raw, signatures = seed_input(source, profile)
    # scores use every gene (the paper's markers are rare and would not survive gene selection)
    seeds = pick_seeds(signature_scores(raw.X, list(raw.var_names), signatures), profile.n_seed_cells)
    adata = prepare(raw, profile, max_cells=None)
    truth = truth_of(adata, seeds=seeds, is_seed=~pd.isna(seeds))
    view = adata.copy()
    view.obs["cell_type"] = pd.Categorical(seeds)
    task = TaskSpec(n_latent=profile.n_latent, outputs=("embed", "classify"))
    return [Inputs(source_label(source, f"top{profile.n_seed_cells}"), view, truth, task,
                   meta={"n_types": len(signatures)})]


def score(inputs, result, profile):
    truth = inputs.truth
    is_seed = truth["is_seed"]
    y = np.where(is_seed, np.nan, truth["labels"]).astype(object)  # score the non-seed cells
    rows = []
    if result.labels is not None:
        rows += classification_rows(y, result.labels)
    latent = embedding_of(result, profile.n_latent)
    if latent is not None:
        rows += classification_rows(y, knn_transfer(latent, truth["seeds"], is_seed, k=10),
                                    method=f"{result.method}+knn")
        rows += classification_rows(y, kmeans_transfer(latent, truth["seeds"], is_seed,
                                                       inputs.meta["n_types"], seed=0),
                                    method=f"{result.method}+kmeans")
    if result.method == "pca":  # once per input (PCA always runs): how right are the seeds themselves
        rows += classification_rows(np.where(is_seed, truth["labels"], np.nan).astype(object),
                                    truth["seeds"], method="signature_seeds")
    return rows


SCENARIO = Scenario(
    name="seed_labeling",
    figure="Fig. 6",
    description="signature seeds (top 50 per subset) labelled onto a whole dataset",
    sources=(SIMULATED, "pbmc_facs"),
    build=build,
    methods=METHODS,
    score=score,
    outputs=("embed", "classify"),
    paper=PAPER,
    paper_notes="Paper (PURIFIED PBMC, 4 T-cell subsets): scANVI 84%, kNN on scVI 73%, kNN on "
                "Seurat PCA 71%, k-means on scVI 74% and on Seurat 72% weighted accuracy.",
)
