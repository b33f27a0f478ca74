"""Wilcoxon rank-sum (Mann-Whitney U) DE baseline on log-normalised expression (scipy).

The default marker test of Seurat and scanpy, reported beside edgeR and scVI's Bayes factors
in the DE scenario (paper section "Differential expression"). scipy's ``mannwhitneyu`` with the
normal approximation (tie-corrected, continuity-corrected) runs on dense blocks of
``block_genes`` genes, so memory stays bounded on large inputs.

``de``: ``score = -log10(p)``, ``signed_score``, ``logFC`` (difference of mean log1p(CP10k)
values in log2 units), ``pvalue``, ``padj`` (BH), ``auc`` = U / (n1 n2) (probability that a cell
of group1 is higher). Genes constant in both groups get p = 1.
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from ._peers_common import counts_csr, de_frame, de_groups, log_normalize


@register(
    name="wilcoxon",
    capabilities=("de",),
    requires=("scipy",),
    defaults={"block_genes": 1000},
    citation="Mann HB, Whitney DR. On a test of whether one of two random variables is stochastically larger than the other. Ann Math Stat 1947",
    url="https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.mannwhitneyu.html",
    description="Wilcoxon rank-sum test on log-normalised expression (DE baseline)",
)
def wilcoxon(adata, task):
    """Wilcoxon rank-sum, group1 vs group2 (or rest), on log1p(counts per 10k)."""
    from scipy.stats import mannwhitneyu

    m1, m2, name1, name2 = de_groups(adata, task)
    logx = log_normalize(counts_csr(adata))
    x1, x2 = logx[m1].tocsc(), logx[m2].tocsc()
    n_genes = logx.shape[1]
    block = int(task.params.get("block_genes", 1000))
    u = np.zeros(n_genes)
    p = np.ones(n_genes)
    for start in range(0, n_genes, block):
        sl = slice(start, min(start + block, n_genes))
        a, b = x1[:, sl].toarray(), x2[:, sl].toarray()
        with np.errstate(divide="ignore", invalid="ignore"):
            res = mannwhitneyu(a, b, axis=0, alternative="two-sided", method="asymptotic", use_continuity=True)
        u[sl], p[sl] = res.statistic, res.pvalue
    mu1 = np.asarray(x1.mean(axis=0)).ravel()
    mu2 = np.asarray(x2.mean(axis=0)).ravel()
    auc = u / (m1.sum() * m2.sum())
    de = de_frame(adata.var_names, (mu1 - mu2) / np.log(2.0), p, {"auc": auc})
    return {"de": de, "extras": {"groups": (name1, name2)}}
