"""scvi-tools' SCVI and SCANVI as an external reference for our native scVI/scANVI.

The scANVI paper's models (Lopez et al. 2018; Xu et al., paper sections "scVI" and "scANVI")
are implemented natively in ``methods/native``; these adapters run the maintained scvi-tools
implementation on the same inputs so the two can be compared. scvi-tools is an optional peer,
never a dependency: when ``scvi`` is not importable in the running interpreter the registry
reports the method as skipped ("pip install scvi-tools").

* ``scvitools_scvi``: ``embed`` = latent mean, ``correct`` = normalised expression
  (``get_normalized_expression``, library size 1e4).
* ``scvitools_scanvi``: SCANVI initialised from a trained SCVI (scvi-tools' recommended path);
  NaN labels are "unlabelled". ``classify`` = ``predict`` (labels and soft probabilities) for
  all cells, ``embed`` = its latent mean.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..base import MethodInputError
from ..registry import register
from ._peers_common import batch_vector, counts_csr

CITATION = ("Gayoso A, et al. A Python library for probabilistic analysis of single-cell omics data. "
            "Nat Biotechnol 2022; Xu C, et al. Probabilistic harmonization and annotation of single-cell "
            "transcriptomics data with deep generative models. Mol Syst Biol 2021")
URL = "https://scvi-tools.org"
_UNLABELLED = "__unlabelled__"


def _prepare(adata, task):
    """A minimal AnnData for scvi-tools: counts, batch, visible labels (NaN -> unlabelled)."""
    import anndata as ad

    obs = pd.DataFrame({"batch": batch_vector(adata, task.batch_key)}, index=adata.obs_names.copy())
    if task.label_key in adata.obs:
        lab = adata.obs[task.label_key].astype(object)
        obs["label"] = np.where(lab.isna(), _UNLABELLED, lab.astype(str))
    return ad.AnnData(X=counts_csr(adata).astype(np.float32), obs=obs,
                      var=pd.DataFrame(index=adata.var_names.copy()))


def _train_scvi(a, task):
    import scvi

    scvi.settings.seed = int(task.seed)
    if task.n_threads:
        scvi.settings.num_threads = int(task.n_threads)
    p = task.params
    scvi.model.SCVI.setup_anndata(a, batch_key="batch")
    model = scvi.model.SCVI(a, n_latent=int(task.n_latent), n_layers=int(p.get("n_layers", 1)),
                            n_hidden=int(p.get("n_hidden", 128)), gene_likelihood=p.get("gene_likelihood", "zinb"))
    model.train(max_epochs=int(p.get("n_epochs", 400)), batch_size=int(p.get("batch_size", 128)),
                early_stopping=bool(p.get("early_stopping", False)), enable_progress_bar=False)
    return model


@register(
    name="scvitools_scvi",
    capabilities=("embed", "correct"),
    requires=("scvi",),
    defaults={"n_epochs": 400, "n_layers": 1, "n_hidden": 128, "gene_likelihood": "zinb", "batch_size": 128},
    citation=CITATION,
    url=URL,
    description="scvi-tools SCVI (external reference for the native scVI)",
)
def scvitools_scvi(adata, task):
    """scvi-tools SCVI: embed = latent mean; correct = normalised expression."""
    import scvi

    a = _prepare(adata, task)
    model = _train_scvi(a, task)
    out = {"embedding": np.asarray(model.get_latent_representation(), dtype=np.float64),
           "extras": {"scvi_tools": scvi.__version__}}
    if "correct" in (task.outputs or ()):
        out["corrected"] = np.asarray(model.get_normalized_expression(library_size=1e4, return_numpy=True))
    return out


@register(
    name="scvitools_scanvi",
    capabilities=("embed", "classify"),
    requires=("scvi",),
    uses_labels=True,
    defaults={"n_epochs": 400, "n_epochs_scanvi": 20, "n_layers": 1, "n_hidden": 128,
              "gene_likelihood": "zinb", "batch_size": 128},
    citation=CITATION,
    url=URL,
    description="scvi-tools SCANVI from a trained SCVI (external reference for the native scANVI)",
)
def scvitools_scanvi(adata, task):
    """scvi-tools SCANVI: labels + probabilities for all cells, latent mean as embedding."""
    import scvi

    a = _prepare(adata, task)
    if "label" not in a.obs:
        raise MethodInputError(f"obs[{task.label_key!r}] (task.label_key) is missing; add the visible labels")
    if (a.obs["label"] != _UNLABELLED).sum() == 0:
        raise MethodInputError(f"obs[{task.label_key!r}] has no visible label; SCANVI needs some labelled cells")
    vae = _train_scvi(a, task)
    model = scvi.model.SCANVI.from_scvi_model(vae, unlabeled_category=_UNLABELLED, labels_key="label")
    model.train(max_epochs=int(task.params.get("n_epochs_scanvi", 20)),
                batch_size=int(task.params.get("batch_size", 128)), enable_progress_bar=False)
    probs = model.predict(soft=True)
    probs = probs[[c for c in probs.columns if c != _UNLABELLED]]
    probs.index = adata.obs_names.copy()
    labels = probs.columns.to_numpy()[np.argmax(probs.to_numpy(), axis=1)].astype(object)
    return {"labels": labels, "probabilities": probs,
            "embedding": np.asarray(model.get_latent_representation(), dtype=np.float64),
            "extras": {"scvi_tools": scvi.__version__}}
