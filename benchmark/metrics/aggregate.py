"""Aggregate scores: scIB's 0.4 batch + 0.6 bio-conservation total (Luecken et al. 2022) and
Open Problems v2 scaling against control methods (each metric mapped so the worst control is 0
and the best control is 1)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._checks import MetricInputError


def scale_by_controls(scores: pd.DataFrame, controls, *, higher_is_better: dict | None = None,
                      clip: bool = True) -> pd.DataFrame:
    """Scale a (method x metric) table so that, per metric, the worst control scores 0 and the
    best control 1 (Open Problems v2). ``controls``: row names of the control methods (e.g. an
    unintegrated PCA and a random embedding). Metrics where lower is better are flipped first.
    With ``clip``, scaled values are clipped to [0, 1] as in the Open Problems summaries.
    """
    missing = [c for c in controls if c not in scores.index]
    if missing:
        raise MetricInputError(f"control rows {missing} are not in the score table; add their scores first")
    hib = higher_is_better or {}
    signed = scores.astype(float).copy()
    for metric in signed.columns:
        if not hib.get(metric, True):
            signed[metric] = -signed[metric]
    lo = signed.loc[list(controls)].min()
    hi = signed.loc[list(controls)].max()
    span = (hi - lo).replace(0, np.nan)  # controls that tie cannot scale a metric
    scaled = (signed - lo) / span
    return scaled.clip(0, 1) if clip else scaled


def aggregate_scores(scores: pd.DataFrame, batch_metrics, bio_metrics, *, batch_weight: float = 0.4) -> pd.DataFrame:
    """Columns ``batch_correction`` (mean of batch metrics), ``bio_conservation`` and ``total``
    = 0.4 batch + 0.6 bio (scIB's weighting), per row of a (method x metric) table."""
    batch = [m for m in batch_metrics if m in scores]
    bio = [m for m in bio_metrics if m in scores]
    if not batch or not bio:
        raise MetricInputError(f"need at least one batch and one bio metric; have batch={batch}, bio={bio}")
    out = pd.DataFrame(index=scores.index)
    out["batch_correction"] = scores[batch].mean(axis=1)
    out["bio_conservation"] = scores[bio].mean(axis=1)
    out["total"] = batch_weight * out["batch_correction"] + (1 - batch_weight) * out["bio_conservation"]
    return out
