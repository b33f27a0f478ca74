"""Seed labeling of four T-cell subsets on ``pbmc_facs`` (paper, "Cell type annotation in a single
dataset based on 'seed' labels", Figure 6): native scANVI variants against kNN and k-means on the
scVI and PCA latents, all from the same seeds in the same run.

Protocol (reused from benchmark/scenarios/seed_labeling.py): the paper's marker signatures
(benchmark/scenarios/signatures/pbmc_facs.json) score every cell of the four subsets (CD4+
regulatory, CD4+ naive, CD4+ memory, CD8+ naive); the top 50 cells per subset are the seeds; every
other cell is labelled and scored by weighted accuracy (mean per-class recall) on the non-seed
cells. The seeds' own accuracy is printed too: it caps what any method can reach.

Genes: ``--genes seurat_v3`` (default; variance-stabilised HVGs computed on these cells, genes
detected in >= 3 cells, FINDINGS.md) or ``dispersion`` (the paper's recipe). The same genes feed
PCA, scVI and scANVI.

scANVI variants (``--variants``, comma separated):
  alt       Algorithm 2 (alternating), classifier 2 x 256, 1 classifier epoch (paper, one dataset)
  altmarg   alt with the labelled cells' bound marginalised over c (labelled_elbo="marginal")
  alt100    Algorithm 2 with 100 classifier epochs, 1 x 128 (the paper's transfer setting)
  joint     Algorithm 1 (J + 50 C, all parameters together)
  joint10   Algorithm 1 with classification weight 10
  jointmarg Algorithm 1 with the labelled cells' bound marginalised over c (labelled_elbo="marginal")
  jointscvitools  jointmarg with the classifier on the posterior mean (scvi-tools' two choices)
  fromscvi  scANVI initialised from the trained scVI, fine-tuned (Algorithm 1) for n_epochs / 4
For every scANVI variant the script also reports kNN on the scANVI latent (``+knn``).

Measured (2026-11-25, 2 shared cores under load, ``--seeds 0,1,2 --variants joint``, seurat_v3 genes,
200 epochs): scanvi[joint] 0.841 / 0.841 / 0.858 (mean 0.847, paper 0.84) against the best baseline,
k-means on scVI, 0.779 / 0.777 / 0.834; kNN and k-means on PCA 0.68-0.70; the seeds themselves are 0.768
right. Before the KL warm-up was restricted to KL(u), KL(c), KL(l) (scanvi_module.py) scanvi[joint]
scored 0.845 / 0.807 / 0.830 and lost seed 2 to k-means on scVI. Training the classifier on the
posterior mean instead of a draw of z (scvi-tools' choice) cost 3 points (seeds 0, 2) and a 1 x 128
classifier instead of 2 x 256 cost 1 (seed 2), both measured with the earlier warm-up.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scripts/seed_labeling_pbmc_facs.py
    ... --seeds 0,1,2 --n-epochs 400 --variants alt,alt100,joint,joint10,fromscvi --genes dispersion
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

PAPER = {"scanvi": 0.84, "scvi+knn": 0.73, "pca+knn": 0.71, "scvi+kmeans": 0.74, "pca+kmeans": 0.72}
VARIANTS = {
    "alt": dict(scheme="alternating", classifier_layers=2, classifier_hidden=256, classifier_epochs=1),
    "alt100": dict(scheme="alternating", classifier_layers=1, classifier_hidden=128, classifier_epochs=100),
    "altmarg": dict(scheme="alternating", classifier_layers=2, classifier_hidden=256, classifier_epochs=1,
                    labelled_elbo="marginal"),
    "joint": dict(scheme="joint", classification_ratio=50.0),
    "joint10": dict(scheme="joint", classification_ratio=10.0),
    "jointmarg": dict(scheme="joint", classification_ratio=50.0, labelled_elbo="marginal"),
    "jointscvitools": dict(scheme="joint", classification_ratio=50.0, labelled_elbo="marginal",
                           classifier_input="mean"),
    "fromscvi": dict(scheme="joint", classification_ratio=50.0),
}


def build_input(n_seed: int, genes: str, n_top: int):
    """(counts AnnData on the chosen genes, seed labels (NaN = not a seed), true labels)."""
    from benchmark.scenarios.seed_labeling import pick_seeds, seed_input, signature_scores
    from datasets import preprocessing as pp

    raw, signatures = seed_input("pbmc_facs", None)
    # scores use every gene: the markers are rare and would not survive gene selection
    seeds = pick_seeds(signature_scores(raw.X, list(raw.var_names), signatures), n_seed)
    detected = np.asarray((raw.X > 0).sum(0)).ravel()
    a = raw[:, detected >= 3].copy()  # seurat_v3's loess fails on never-detected genes
    if genes == "seurat_v3":
        chosen = pp.select_hvg_seurat_v3(a, n_top=n_top)
    elif genes == "dispersion":
        chosen = pp.select_genes_by_dispersion(a, n_top=n_top, batch_key=None)
    else:
        raise SystemExit(f"--genes must be seurat_v3 or dispersion, got {genes!r}")
    a = a[:, list(chosen)].copy()
    a = a[np.asarray(a.X.sum(1)).ravel() > 0].copy() if (np.asarray(a.X.sum(1)).ravel() == 0).any() else a
    keep = raw.obs_names.isin(a.obs_names)
    seeds = seeds[keep]
    a.obs["seed"] = pd.Categorical(seeds)
    return a, seeds, a.obs["cell_type"].astype(str).to_numpy()


def run(seed: int, a, seeds, truth, variants, n_epochs: int, log) -> dict:
    from benchmark.metrics import weighted_accuracy
    from methods.adapters.pca import pca_embedding
    from methods.native.baselines import kmeans_transfer, knn_transfer
    from methods.native.scvi import SCANVI, SCVI

    is_seed = ~pd.isna(seeds)
    y = np.where(is_seed, np.nan, truth).astype(object)  # score the non-seed cells only
    out = {"signature_seeds (accuracy)": float((seeds[is_seed] == truth[is_seed]).mean())}

    def score(name, pred):
        out[name] = weighted_accuracy(y, pred)
        log(f"  seed {seed} {name:24s} {out[name]:.3f}")

    def baselines(name, z):
        score(f"{name}+knn", knn_transfer(z, seeds, k=10, seed=seed)[0])
        score(f"{name}+kmeans", kmeans_transfer(z, seeds, n_clusters=4, seed=seed)[0])

    z_pca, _ = pca_embedding(a, 10, genes="all", batch_key=None, seed=seed)  # genes already chosen
    baselines("pca", z_pca)
    t = time.perf_counter()
    scvi = SCVI(a, None, n_latent=10, seed=seed)
    scvi.train(n_epochs)
    log(f"  seed {seed} scVI trained in {time.perf_counter() - t:.0f}s")
    baselines("scvi", scvi.get_latent_representation())
    for v in variants:
        t = time.perf_counter()
        kw = VARIANTS[v]
        if v == "fromscvi":
            m = SCANVI.from_scvi(scvi, a, "seed", **kw)
            m.train(max(10, n_epochs // 4), n_epochs_kl_warmup=0)
        else:
            m = SCANVI(a, None, "seed", n_latent=10, seed=seed, **kw)
            m.train(n_epochs)
        log(f"  seed {seed} scANVI[{v}] trained in {time.perf_counter() - t:.0f}s")
        score(f"scanvi[{v}]", m.predict())
        score(f"scanvi[{v}]+knn", knn_transfer(m.get_latent_representation(), seeds, k=10, seed=seed)[0])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0", help="comma-separated training seeds (default 0)")
    p.add_argument("--n-epochs", type=int, default=200)
    p.add_argument("--n-seed-cells", type=int, default=50)
    p.add_argument("--genes", default="seurat_v3", choices=("seurat_v3", "dispersion"))
    p.add_argument("--n-top-genes", type=int, default=2000)
    p.add_argument("--variants", default="alt,joint,fromscvi")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise SystemExit(f"unknown --variants {bad}; choose from {list(VARIANTS)}")
    log = lambda s: print(s, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    a, seeds, truth = build_input(args.n_seed_cells, args.genes, args.n_top_genes)
    log(f"pbmc_facs T-cell subsets: {a.n_obs} cells x {a.n_vars} genes ({args.genes}), "
        f"{int((~pd.isna(seeds)).sum())} seeds; epochs {args.n_epochs}, threads {args.threads}")
    runs = {int(s): run(int(s), a, seeds, truth, variants, args.n_epochs, log) for s in args.seeds.split(",")}
    table = pd.DataFrame(runs)
    res = pd.DataFrame({"mean": table.mean(1), "sd": table.std(1, ddof=1) if table.shape[1] > 1 else np.nan})
    res = pd.concat([table.add_prefix("seed "), res], axis=1)
    res["paper"] = [PAPER.get(k.split("[")[0] if k.startswith("scanvi[") and not k.endswith("+knn") else k, np.nan)
                    for k in res.index]
    print(f"\nWeighted accuracy on non-seed cells (genes: {args.genes}, {args.n_epochs} epochs, "
          f"{time.perf_counter() - t0:.0f}s total)")
    print(res.to_string(float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
