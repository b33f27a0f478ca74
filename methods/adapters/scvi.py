"""scVI (native PyTorch implementation, methods/native/scvi): embed, correct, de.

Lopez et al. 2018; the scANVI paper's Online Methods (Xu et al. 2021). Options in
task.params: n_epochs, batch_size, lr, eps, n_layers, n_hidden, gene_likelihood
(zinb | nb | poisson), dispersion (gene | gene-batch | gene-label), library (latent |
observed), n_epochs_kl_warmup, early_stopping, n_top_genes, de_n_samples, de_mode
(cells | labels), de_compare (population | pairs, the paper), de_delta ("estimate", the default, or a
log2 threshold such as 0.25), de_n_draws, de_expression (mean = (1 - pi) f_w, the population default |
scale = f_w, the paper's and the pairs default), device.
"""
from __future__ import annotations

from ..registry import register

CITATION = ("Lopez R, Regier J, Cole MB, Jordan MI, Yosef N. Deep generative modeling for single-cell "
            "transcriptomics. Nat Methods 2018; Xu C et al. Probabilistic harmonization and annotation of "
            "single-cell transcriptomics data with deep generative models. Mol Syst Biol 2021")
URL = "https://doi.org/10.15252/msb.20209620"


@register(name="scvi", capabilities=("embed", "correct", "de"), requires=("torch",),
          defaults={"n_epochs": None, "batch_size": 128, "lr": 1e-3, "eps": 0.01, "n_layers": 2,
                    "n_hidden": 128, "gene_likelihood": "zinb"},
          citation=CITATION, url=URL, version="native")
def scvi(adata, task):
    """scVI: latent mean of q(z|x), batch-marginalised denoised expression, Bayes-factor DE."""
    from methods.native.scvi.pipeline import run

    return run(adata, task, "scvi")
