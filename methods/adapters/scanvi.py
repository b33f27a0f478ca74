"""scANVI (native PyTorch implementation, methods/native/scvi) and its training variants.

* ``scanvi``: Algorithm 2 (alternating), the paper's default (Supplementary Note 3);
  classifier 2 x 256 with 1 classifier epoch on a single dataset, 1 x 128 with 100 when
  transferring labels to unlabelled batches (paper, Hyperparameters).
* ``scanvi_joint``: Algorithm 1 (J + alpha C, all parameters together).
* ``scanvi_hierarchical``: the hierarchical classifier of Supplementary Note 4, using
  task.hierarchy (or uns["hierarchy"]) and task.coarse_label_key; per-level predictions in
  extras["levels"].
* ``scanvi_from_scvi``: scVI trained first, then scANVI initialised from it and fine-tuned.

All share methods.native.scvi.pipeline.run; task.params as for ``scvi`` plus scheme,
classifier_layers, classifier_hidden, classifier_epochs, classification_ratio, n_epochs_scanvi,
labelled_elbo ("observed", the paper, or "marginal", scvi-tools' choice) and classifier_input
("sample", the paper, or "mean", scvi-tools' choice) for the classification term; both default to
"auto": scvi-tools' choices for joint training (``scanvi_joint``, ``scanvi_from_scvi``) that transfers
labels to a batch without any, the paper's otherwise (measured; methods.native.scvi.model.auto_label_choices).
"""
from __future__ import annotations

from ..registry import register
from .scvi import CITATION, URL

_CAPS = ("embed", "correct", "classify", "de")
_DEFAULTS = {"n_epochs": None, "batch_size": 128, "lr": 1e-3, "eps": 0.01, "n_layers": 2, "n_hidden": 128,
             "gene_likelihood": "zinb"}


def _run(adata, task, variant):
    from methods.native.scvi.pipeline import run

    return run(adata, task, variant)


@register(name="scanvi", capabilities=_CAPS, requires=("torch",), uses_labels=True, defaults=_DEFAULTS,
          citation=CITATION, url=URL, version="native")
def scanvi(adata, task):
    """scANVI, alternating training (Algorithm 2, paper default)."""
    return _run(adata, task, "scanvi")


@register(name="scanvi_joint", capabilities=_CAPS, requires=("torch",), uses_labels=True, defaults=_DEFAULTS,
          citation=CITATION, url=URL, version="native")
def scanvi_joint(adata, task):
    """scANVI, joint training J + alpha C (Algorithm 1)."""
    return _run(adata, task, "scanvi_joint")


@register(name="scanvi_hierarchical", capabilities=_CAPS, requires=("torch",), uses_labels=True,
          defaults=_DEFAULTS, citation=CITATION, url=URL, version="native")
def scanvi_hierarchical(adata, task):
    """scANVI with the hierarchical classifier (Supplementary Note 4)."""
    return _run(adata, task, "scanvi_hierarchical")


@register(name="scanvi_from_scvi", capabilities=_CAPS, requires=("torch",), uses_labels=True,
          defaults={**_DEFAULTS, "n_epochs_scanvi": None}, citation=CITATION, url=URL, version="native")
def scanvi_from_scvi(adata, task):
    """scANVI initialised from a trained scVI, then fine-tuned (joint objective)."""
    return _run(adata, task, "scanvi_from_scvi")
