"""One implementation behind the registered methods scvi, scanvi and their variants.

``run(adata, task, variant)`` reads the task (batch/label keys, seed, n_latent, outputs,
DE groups, hierarchy, threads) and task.params (training options), trains the model and
returns the adapter dict of methods.base.OUTPUT_KEYS.
"""
from __future__ import annotations

from typing import Optional


from methods.base import MethodInputError, MethodUnavailable

from .de import DEFAULT_DELTA, resolve_expression
from .model import SCANVI, SCVI, torch_threads, transfers_labels

VARIANTS = ("scvi", "scanvi", "scanvi_joint", "scanvi_hierarchical", "scanvi_from_scvi")

#: training defaults shared by every variant (paper, Hyperparameters); n_epochs None = heuristic
DEFAULTS = {
    "n_epochs": None, "batch_size": 128, "lr": 1e-3, "eps": 0.01, "weight_decay": 1e-6,
    "n_layers": 2, "n_hidden": 128, "dropout": 0.1, "gene_likelihood": "zinb", "dispersion": "gene",
    "library": "latent", "n_epochs_kl_warmup": None, "early_stopping": False, "device": None,
    "n_top_genes": None, "de_n_samples": 5000, "de_mode": None, "de_compare": "population",
    "de_delta": DEFAULT_DELTA,  # |LFC| threshold of de_compare="population" (log2), or "estimate" (default)
    # "scale" = f_w (the paper), "mean" = (1 - pi) f_w; None: "mean" for population, "scale" for pairs
    "de_n_draws": 200, "de_expression": None,
    "correct_batch": "marginal",
    "progress_bar": False,
}

MODEL_KEYS = ("n_layers", "n_hidden", "dropout", "gene_likelihood", "dispersion", "library")
TRAIN_KEYS = ("batch_size", "lr", "eps", "weight_decay", "n_epochs_kl_warmup", "early_stopping", "progress_bar")


def select_genes(adata, params: dict, batch_key: str):
    """Optionally keep the top ``n_top_genes`` variable genes (datasets.preprocessing)."""
    n_top = params.get("n_top_genes")
    if not n_top or n_top >= adata.n_vars:
        return adata
    try:
        from datasets import preprocessing
    except ImportError as exc:  # the preprocessing module is part of the datasets package
        raise MethodUnavailable(f"gene selection needs datasets.preprocessing ({exc})") from exc
    flavor = params.get("hvg_flavor", "seurat_v3")
    fn = preprocessing.select_hvg_seurat_v3 if flavor == "seurat_v3" else preprocessing.select_genes_by_dispersion
    selected = fn(adata, n_top=int(n_top), batch_key=batch_key)
    genes = selected if not hasattr(selected, "var_names") else selected.var_names
    return adata[:, list(genes)].copy()


def _scanvi_kwargs(adata, task, params: dict, variant: str) -> dict:
    """Classifier settings from the paper's Hyperparameters: 2 x 256 with c = 1 on a single
    dataset; 1 x 128 with c = 100 when transferring labels to batches without labels."""
    labelled = adata.obs[task.label_key].notna().to_numpy()
    batches = adata.obs[task.batch_key].astype(str).to_numpy()
    transfer = transfers_labels(batches, labelled)
    layers, hidden, epochs = (1, 128, 100) if transfer else (2, 256, 1)
    kw = {
        "scheme": params.get("scheme") or ("joint" if variant in ("scanvi_joint", "scanvi_from_scvi") else "alternating"),
        "classifier_layers": params.get("classifier_layers", layers),
        "classifier_hidden": params.get("classifier_hidden", hidden),
        "classifier_epochs": params.get("classifier_epochs", epochs),
        "classification_ratio": params.get("classification_ratio", 50.0),
        "classifier_lr": params.get("classifier_lr", 5e-3),
    }
    # unset: the model's default ("auto", resolved from the scheme and the labels; model.py)
    kw.update({k: params[k] for k in ("labelled_elbo", "classifier_input") if k in params})
    if variant == "scanvi_hierarchical":
        hierarchy = task.hierarchy or adata.uns.get("hierarchy")
        if not hierarchy:
            raise MethodInputError("scanvi_hierarchical needs task.hierarchy (fine -> coarse) or uns['hierarchy']")
        kw["hierarchy"] = dict(hierarchy)
        if task.coarse_label_key:
            kw["coarse_labels_key"] = task.coarse_label_key
    return kw


def run(adata, task, variant: str = "scvi") -> dict:
    """Train the ``variant`` on ``adata`` and return the outputs ``task.outputs`` asks for."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")
    params = {**DEFAULTS, **(task.params or {})}
    if task.batch_key not in adata.obs:
        raise MethodInputError(f"obs[{task.batch_key!r}] (task.batch_key) is missing; add the batch column")
    adata = select_genes(adata, params, task.batch_key)
    outputs = tuple(task.outputs or ("embed",))
    model_kw = {k: params[k] for k in MODEL_KEYS}
    model_kw.update(n_latent=task.n_latent, seed=task.seed, device=params["device"])
    train_kw = {k: params[k] for k in TRAIN_KEYS}
    with torch_threads(task.n_threads):
        if variant == "scvi":
            model = SCVI(adata, task.batch_key, **model_kw)
            model.train(params["n_epochs"], **train_kw)
        else:
            if task.label_key not in adata.obs:
                raise MethodInputError(f"obs[{task.label_key!r}] (task.label_key) is missing; scANVI needs labels")
            skw = _scanvi_kwargs(adata, task, params, variant)
            if variant == "scanvi_from_scvi":
                base = SCVI(adata, task.batch_key, **model_kw)
                base.train(params["n_epochs"], **train_kw)
                model = SCANVI.from_scvi(base, adata, task.label_key, **skw)
                n_ft = params.get("n_epochs_scanvi") or max(10, (params["n_epochs"] or 40) // 4)
                model.train(n_ft, **{**train_kw, "n_epochs_kl_warmup": 0})
            else:
                model = SCANVI(adata, task.batch_key, task.label_key, **skw, **model_kw)
                model.train(params["n_epochs"], **train_kw)
        return collect_outputs(model, adata, task, params, outputs, variant)


def collect_outputs(model, adata, task, params: dict, outputs, variant: str) -> dict:
    out = {"embedding": model.get_latent_representation()}
    extras = {"history": model.history_, "n_genes_used": adata.n_vars, "variant": variant,
              "final_train_loss": model.history_["train_loss"][-1] if model.history_.get("train_loss") else None}
    if "correct" in outputs:
        out["corrected"] = model.get_denoised_expression(transform_batch=params["correct_batch"])
        extras["corrected_genes"] = list(model.genes)
    if isinstance(model, SCANVI):
        proba = model.predict_proba()
        out["probabilities"] = proba
        out["labels"] = proba.columns.to_numpy()[proba.to_numpy().argmax(1)].astype(object)
        extras["max_posterior"] = proba.max(axis=1).to_numpy()
        if model.coarse_labels is not None:
            coarse = model.predict_proba(level="coarse")
            extras["levels"] = {"fine": out["labels"],
                                "coarse": coarse.columns.to_numpy()[coarse.to_numpy().argmax(1)].astype(object)}
            extras["probabilities_coarse"] = coarse
    if "de" in outputs and task.de_groups:
        key = task.de_key or task.label_key
        g1, g2 = (tuple(task.de_groups) + (None,))[:2]
        mode = params["de_mode"]
        if mode is None:  # scANVI conditions on labels whenever the DE groups are its label classes
            labels = model.labels if isinstance(model, SCANVI) else []
            groups_are_labels = all(str(g) in labels for g in (g1, g2) if g is not None)
            mode = "labels" if isinstance(model, SCANVI) and (key == task.label_key or groups_are_labels) else "cells"
        # compare "population" (default; de.py) or "pairs" (the paper's random-pair Bayes factors)
        out["de"] = model.differential_expression(groupby=key, group1=g1, group2=g2,
                                                  n_samples=int(params["de_n_samples"]), mode=mode,
                                                  compare=params["de_compare"], delta=params["de_delta"],
                                                  n_draws=int(params["de_n_draws"]),
                                                  expression=params["de_expression"])
        extras["de_mode"], extras["de_compare"] = mode, params["de_compare"]
        extras["de_expression"] = resolve_expression(params["de_expression"], params["de_compare"])
    out["extras"] = extras
    return out
