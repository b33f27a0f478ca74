"""Differential expression against a bulk reference (paper, "Hypotheses testing in harmonized
datasets" and Supplementary Figure 13).

"We first defined genes as true positives if their adjusted p-values in the reference bulk data
were under 5% and then calculated the area under the ROC curve (AUROC) based on the Bayes
factors [...] or the p-values [...]. We also used a second score that evaluates the
reproducibility of gene ranking (bulk reference vs. single-cell; considering all genes), using
the Kendall rank correlation coefficient." Scores are "higher = more DE" (pass -log p-values,
not p-values). Series are aligned on their gene index; genes missing from either side are left
out.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._checks import MetricInputError


def _align(scores, reference, names=("scores", "reference")) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(scores, pd.Series) and isinstance(reference, pd.Series):
        common = scores.index.intersection(reference.index)
        s, r = scores.loc[common].to_numpy(float), reference.loc[common].to_numpy(float)
    else:
        s, r = np.asarray(scores, dtype=float).ravel(), np.asarray(reference, dtype=float).ravel()
        if len(s) != len(r):
            raise MetricInputError(f"`{names[0]}` ({len(s)}) and `{names[1]}` ({len(r)}) differ in length; "
                                   "pass pandas Series indexed by gene to align them")
    keep = np.isfinite(s) & np.isfinite(r)
    if keep.sum() < 2:
        raise MetricInputError(f"fewer than 2 genes have finite `{names[0]}` and `{names[1]}`")
    return s[keep], r[keep]


def auroc(scores, bulk_padj, *, alpha: float = 0.05) -> float:
    """AUROC of per-gene DE scores against bulk positives (adjusted p < ``alpha``)."""
    from sklearn.metrics import roc_auc_score

    s, padj = _align(scores, bulk_padj, ("scores", "bulk_padj"))
    positive = padj < alpha
    if positive.all() or not positive.any():
        raise MetricInputError(f"bulk reference has {int(positive.sum())} of {len(positive)} genes with "
                               f"adj. p < {alpha}; AUROC needs both positives and negatives")
    return float(roc_auc_score(positive, s))


def kendall_tau(scores, bulk_statistic) -> float:
    """Kendall rank correlation (tau-b) between DE scores and a bulk statistic over all genes."""
    from scipy.stats import kendalltau

    s, r = _align(scores, bulk_statistic, ("scores", "bulk_statistic"))
    return float(kendalltau(s, r).statistic)
