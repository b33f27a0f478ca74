"""Control methods (Open Problems v2 style): what a method scores with no information, used to
scale metrics (``benchmark.metrics.scale_by_controls``) and as sanity floors in reports.

- ``random_embedding``: Gaussian noise, n_latent dims (the random-embedding control);
- ``shuffled_labels``: every cell gets a visible label drawn at random from the labelled cells
  (keeps the label frequencies, carries no information about the cell);
- ``majority_vote``: every cell gets the most frequent visible label.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..base import MethodInputError
from ..registry import register


def _visible(adata, task) -> tuple[np.ndarray, np.ndarray]:
    if task.label_key not in adata.obs:
        raise MethodInputError(f"obs[{task.label_key!r}] (task.label_key) is missing; it holds the visible labels")
    y = adata.obs[task.label_key].astype(object)
    known = y.dropna().astype(str).to_numpy()
    if len(known) == 0:
        raise MethodInputError(f"obs[{task.label_key!r}] has no visible label; controls need some")
    return known, np.unique(known)


@register(name="random_embedding", capabilities=("embed",), is_control=True,
          citation="Open Problems in Single-Cell Analysis (controls)", url="https://openproblems.bio",
          description="Gaussian noise embedding (control)")
def random_embedding(adata, task):
    """Embedding of independent standard normal noise (seeded)."""
    rng = np.random.default_rng(task.seed)
    return {"embedding": rng.normal(size=(adata.n_obs, task.n_latent))}


@register(name="shuffled_labels", capabilities=("classify",), uses_labels=True, is_control=True,
          citation="Open Problems in Single-Cell Analysis (controls)", url="https://openproblems.bio",
          description="labels drawn at random from the labelled cells (control)")
def shuffled_labels(adata, task):
    """Each cell gets the label of a random labelled cell; probabilities = label frequencies."""
    known, classes = _visible(adata, task)
    rng = np.random.default_rng(task.seed)
    labels = rng.choice(known, size=adata.n_obs, replace=True).astype(object)
    freq = pd.Series(known).value_counts(normalize=True).reindex(classes).to_numpy()
    proba = pd.DataFrame(np.tile(freq, (adata.n_obs, 1)), index=adata.obs_names, columns=classes)
    return {"labels": labels, "probabilities": proba}


@register(name="majority_vote", capabilities=("classify",), uses_labels=True, is_control=True,
          citation="Open Problems in Single-Cell Analysis (controls)", url="https://openproblems.bio",
          description="the most frequent visible label for every cell (control)")
def majority_vote(adata, task):
    """Every cell gets the most frequent visible label."""
    known, classes = _visible(adata, task)
    counts = pd.Series(known).value_counts().reindex(classes)
    top = counts.idxmax()  # ties: first class in sorted order
    proba = pd.DataFrame(0.0, index=adata.obs_names, columns=classes)
    proba[top] = 1.0
    return {"labels": np.full(adata.n_obs, top, dtype=object), "probabilities": proba}
