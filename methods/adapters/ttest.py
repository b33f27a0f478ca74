"""Welch t-test DE baseline on log-normalised expression (scipy).

A plain t-test on log-normalised data is a strong DE baseline on the bulk-validated PBMC
comparisons (FINDINGS.md), so the DE scenario reports it beside edgeR and scVI's Bayes factors
(paper section "Differential expression"). Means and variances come straight from the sparse
matrix (no dense copy); scipy turns them into Welch t statistics and two-sided p-values.

``de``: ``score = -log10(p)`` (higher = more DE), ``signed_score``, ``logFC`` = difference of the
mean log1p(CP10k) values in log2 units (group1 minus group2), ``pvalue``, ``padj`` (BH),
``statistic`` (t). Genes constant in both groups get p = 1.
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from ._peers_common import counts_csr, de_frame, de_groups, log_normalize


def _mean_var(X):
    """Column means and unbiased variances of a sparse (or dense) matrix."""
    n = X.shape[0]
    mean = np.asarray(X.mean(axis=0)).ravel()
    sq = np.asarray(X.multiply(X).mean(axis=0)).ravel() if hasattr(X, "multiply") else (X ** 2).mean(0)
    var = np.maximum(sq - mean ** 2, 0.0) * n / max(n - 1, 1)
    return mean, var


@register(
    name="ttest",
    capabilities=("de",),
    requires=("scipy",),
    citation="Welch BL. The generalization of 'Student's' problem when several different population variances are involved. Biometrika 1947",
    url="https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.ttest_ind_from_stats.html",
    description="Welch t-test on log-normalised expression (DE baseline)",
)
def ttest(adata, task):
    """Welch t-test, group1 vs group2 (or rest), on log1p(counts per 10k)."""
    from scipy.stats import ttest_ind_from_stats

    m1, m2, name1, name2 = de_groups(adata, task)
    logx = log_normalize(counts_csr(adata))
    mu1, v1 = _mean_var(logx[m1])
    mu2, v2 = _mean_var(logx[m2])
    with np.errstate(divide="ignore", invalid="ignore"):
        t, p = ttest_ind_from_stats(mu1, np.sqrt(v1), int(m1.sum()), mu2, np.sqrt(v2), int(m2.sum()),
                                    equal_var=False)
    t = np.where(np.isfinite(t), t, 0.0)
    de = de_frame(adata.var_names, (mu1 - mu2) / np.log(2.0), p, {"statistic": t})
    return {"de": de, "extras": {"groups": (name1, name2)}}
