"""The scANVI torch module (paper, Online Methods and Supplementary Notes 2-4).

Generative: c ~ Cat(1/C), u ~ N(0, I), z | u, c ~ N(f_mu(u, c), f_sigma(u, c)), then the scVI
likelihood for x | z, l, s. Variational: q(z|x) q(c|z) q(u|z, c) q(l|x). The negative ELBO per
cell (Supplementary Note 2, terms i-v) is

    -log p(x|z,l) + KL(q(l|x) || p(l)) - H(q(z|x))
      + sum_c q(c|z) [ -log p(z|u_c, c) + KL(q(u|z,c) || N(0,I)) ] + KL(q(c|z) || Cat(1/C))

with q(c|z) replaced by the one-hot of the observed label for labelled cells (bound L; the
KL on c becomes -log p(c) = log C). The classification term C = -log q(y|z) on labelled cells
trains the classifier (Supplementary Note 3, Algorithms 1 and 2).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .distributions import SparseCounts, gaussian_entropy, kl_normal_standard, log_normal_density
from .hierarchy import hierarchical_log_probs
from .module import VAE, FCLayers, GaussianHead, random_stream, reparameterize


class Classifier(nn.Module):
    """q(c | z): fully connected layers then a softmax (paper: 2 x 256 single dataset, 1 x 128 transfer)."""

    def __init__(self, n_in: int, n_classes: int, n_layers: int = 1, n_hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.trunk = FCLayers(n_in, n_hidden, n_layers, n_hidden, dropout=dropout) if n_layers > 0 else None
        self.out = nn.Linear(n_hidden if n_layers > 0 else n_in, n_classes)

    def logits(self, z):
        return self.out(self.trunk(z) if self.trunk is not None else z)

    def log_probs(self, z):
        return torch.log_softmax(self.logits(z), dim=-1)


class HierarchicalClassifier(nn.Module):
    """Two networks f (fine) and f^g (groups); fine posterior from Supplementary Note 4."""

    def __init__(self, n_in: int, parent: torch.Tensor, n_coarse: int, n_layers: int = 1,
                 n_hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.fine = Classifier(n_in, len(parent), n_layers, n_hidden, dropout)
        self.coarse = Classifier(n_in, n_coarse, n_layers, n_hidden, dropout)
        self.register_buffer("parent", torch.as_tensor(parent, dtype=torch.long))

    def level_log_probs(self, z):
        return hierarchical_log_probs(self.fine.logits(z), self.coarse.logits(z), self.parent)

    def log_probs(self, z):
        return self.level_log_probs(z)[0]


LABELLED_ELBOS = ("observed", "marginal")


class SCANVAE(VAE):
    """scVI module extended with c, u, the classifier and p(z | u, c).

    ``labelled_elbo``: "observed" (the paper, Supplementary Note 2) bounds labelled cells with L,
    the observed class in place of q(c|z); "marginal" bounds every cell of the ELBO minibatch
    with U (c marginalised with q(c|z)), as scvi-tools' SCANVAE does, so labels reach the model
    only through the classification term.
    """

    def __init__(self, n_genes: int, n_labels: int, *, classifier_layers: int = 1,
                 classifier_hidden: int = 128, hierarchy_parent=None, n_coarse: int = 0,
                 labelled_elbo: str = "observed", **vae_kwargs):
        if n_labels < 2:
            raise ValueError("scANVI needs at least two label classes")
        if labelled_elbo not in LABELLED_ELBOS:
            raise ValueError(f"labelled_elbo must be one of {LABELLED_ELBOS}, got {labelled_elbo!r}")
        super().__init__(n_genes, n_labels=n_labels, **vae_kwargs)
        self.labelled_elbo = labelled_elbo
        d, h, L, p = self.n_latent, self.n_hidden, len(self.decoder.linears), 0.1
        if hierarchy_parent is None:
            self.classifier = Classifier(d, n_labels, classifier_layers, classifier_hidden, p)
        else:
            self.classifier = HierarchicalClassifier(d, hierarchy_parent, n_coarse, classifier_layers, classifier_hidden, p)
        self.u_encoder = FCLayers(d, h, L, h, n_cat=n_labels, dropout=p)
        self.u_head = GaussianHead(h, d)
        self.z_decoder = FCLayers(d, h, L, h, n_cat=n_labels, dropout=0.0)
        self.z_prior_head = GaussianHead(h, d)

    def classifier_parameters(self):
        return list(self.classifier.parameters())

    def non_classifier_parameters(self):
        ids = {id(p) for p in self.classifier.parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    def prior_z(self, u, c):
        """p(z | u, c) = N(f_mu(u, c), f_sigma(u, c))."""
        return self.z_prior_head(self.z_decoder(u, c))

    def latent_class_terms(self, z: torch.Tensor, cells: torch.Tensor,
                           classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(-log p(z|u,c), KL(q(u|z,c) || N(0,I))) for each (cell, class) pair, u sampled."""
        zc = z.index_select(0, cells)  # not z[cells]: its backward sums in a thread-dependent order
        qu_m, qu_v = self.u_head(self.u_encoder(zc, classes))
        u = reparameterize(qu_m, qu_v)
        pz_m, pz_v = self.prior_z(u, classes)
        return -log_normal_density(zc, pz_m, pz_v), kl_normal_standard(qu_m, qu_v)

    def loss(self, x, nz: SparseCounts, batch, label=None, kl_weight: float = 1.0, log_x=None,
             split: Optional[tuple] = None, latent_stream: Optional[torch.Generator] = None) -> dict:
        """Per-cell negative ELBO: L for labelled cells (label >= 0), U for the others.

        ``split``: (labelled rows, unlabelled rows) when the caller knows them (the model's training
        loop does; found here with ``nonzero``, on a GPU they would make the host wait every step).
        ``latent_stream``: the generator ``latent_class_loss`` draws from (None: torch's default).

        The KL warm-up weight multiplies KL(u), KL(c) and KL(l) only; the z level
        E[log q(z|x) - log p(z|u,c)] always has weight 1, as in the authors' implementation (scvi
        0.x SCANVI.forward, kept in scvi-tools' SCANVAE.loss). Warming it too let the 50 x
        classification term shape z with the mixture prior switched off: on pbmc_facs seed
        labelling that cost 1-3 points of weighted accuracy (benchmarks/scripts/seed_labeling_pbmc_facs.py).
        """
        inf = self.inference(x, batch, log_x=log_x)
        z = inf["z"]
        gen = self.generative(z, inf["log_library"], batch, label)
        recon = self.reconstruction(x, nz, gen)
        kl_l = self.kl_library(inf, batch)
        with random_stream(latent_stream):
            z_pairs, kl_uc = self.latent_class_loss(z, label, split)
        z_level = z_pairs - gaussian_entropy(inf["qz_v"])
        return {"total": recon + z_level + kl_weight * (kl_uc + kl_l), "recon": recon, "kl_z": z_level + kl_uc,
                "kl_l": kl_l, "z": z}

    def latent_class_loss(self, z: torch.Tensor, label: Optional[torch.Tensor] = None,
                          split: Optional[tuple] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The terms of the bound that read z only, per cell: (E_q(c|z)[-log p(z|u,c)] (the
        observed class for labelled cells), E_q(c|z)[KL(q(u|z,c) || N(0,I))] + KL(q(c|z) || p(c))).

        With ``loss``'s other terms (which read x) they make the bound; the model's two-thread
        training step computes them on its second thread."""
        n, C = z.shape[0], self.n_labels
        if label is None:
            label = torch.full((n,), -1, dtype=torch.long, device=z.device)
        if self.labelled_elbo == "marginal":
            lab_cells, unl_cells = torch.arange(0, device=z.device), torch.arange(n, device=z.device)
        elif split is not None:
            lab_cells, unl_cells = split
        else:
            labelled = label >= 0
            lab_cells = labelled.nonzero().squeeze(-1)
            unl_cells = (~labelled).nonzero().squeeze(-1)
        # (cell, class) pairs: the observed class for labelled cells, every class otherwise
        cells = torch.cat([lab_cells, unl_cells.repeat_interleave(C)])
        classes = torch.cat([label[lab_cells], torch.arange(C, device=z.device).repeat(len(unl_cells))])
        z_terms, u_terms = self.latent_class_terms(z, cells, classes)
        # q(c|z) of the unlabelled cells; BatchNorm in training needs > 1 cell, so a lone
        # unlabelled cell is classified within the whole minibatch (none: no classifier pass)
        log_q = (self.classifier.log_probs(z[unl_cells]) if len(unl_cells) != 1
                 else self.classifier.log_probs(z).index_select(0, unl_cells))  # (n_unl, C)
        q = log_q.exp()
        weights = torch.cat([torch.ones(len(lab_cells), device=z.device), q.reshape(-1)])
        def per_cell(t):  # sum over each cell's (cell, class) pairs, weighted by q(c|z) or the label
            return torch.zeros(n, device=z.device).index_add(0, cells, weights * t)

        kl_c = torch.full((n,), math.log(C), device=z.device)  # -log p(c) for labelled cells
        kl_c = kl_c.index_copy(0, unl_cells, (q * log_q).sum(-1) + math.log(C))
        return per_cell(z_terms), per_cell(u_terms) + kl_c

    def classification_loss(self, z: torch.Tensor, label: torch.Tensor,
                            coarse_label: Optional[torch.Tensor] = None, all_labelled: bool = False) -> torch.Tensor:
        """Mean -log q(y | z) over labelled cells (C in Supplementary Note 3); with a hierarchy,
        cells labelled only at the group level add -log q(y^g | z). ``all_labelled``: every label is
        >= 0 (skips the mask, whose size a GPU would have to report back to the host)."""
        losses = []
        fine = label >= 0
        if isinstance(self.classifier, HierarchicalClassifier):
            log_fine, log_coarse = self.classifier.level_log_probs(z)
            if fine.any():
                losses.append(-log_fine[fine].gather(1, label[fine].unsqueeze(1)).squeeze(1))
            if coarse_label is not None:
                only = (~fine) & (coarse_label >= 0)
                if only.any():
                    losses.append(-log_coarse[only].gather(1, coarse_label[only].unsqueeze(1)).squeeze(1))
        elif all_labelled or fine.any():
            zl, yl = (z, label) if all_labelled else (z[fine], label[fine])
            losses.append(F.cross_entropy(self.classifier.logits(zl), yl, reduction="none"))
        if not losses:
            return torch.zeros((), device=z.device)
        return torch.cat(losses).mean()

    @torch.no_grad()
    def sample_z_given_class(self, c: int, n: int) -> torch.Tensor:
        """z ~ p(z | u, c) with u ~ N(0, I): the label-conditioned generative draw (DE, paper)."""
        u = torch.randn(n, self.n_latent, device=self.log_theta.device)
        classes = torch.full((n,), int(c), dtype=torch.long, device=u.device)
        pz_m, pz_v = self.prior_z(u, classes)
        return pz_m + pz_v.sqrt() * torch.randn_like(pz_m)
