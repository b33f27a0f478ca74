"""scANVI loss terms: which parts the KL warm-up weight multiplies (methods/native/scvi/scanvi_module.py)."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from methods.native.scvi.data import CountData
from methods.native.scvi.scanvi_module import SCANVAE


def _minibatch(n=40, g=30, n_labels=3, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(rng.negative_binomial(2, 0.3, size=(n, g)).astype(np.float32))
    label = rng.integers(0, n_labels, n)
    label[rng.random(n) < 0.5] = -1  # half unlabelled: both bounds L and U are in the loss
    return CountData(X, np.zeros(n, dtype=np.int64), label).minibatch(np.arange(n))


def _loss(module, mb, kl_weight, seed=1):
    torch.manual_seed(seed)  # the same draws of z, u and l for every call
    return module.loss(mb.x, mb.nz, mb.batch, mb.label, kl_weight=kl_weight)


def test_warmup_weight_spares_the_z_level_and_scales_kl_u_c_l():
    torch.manual_seed(0)
    module = SCANVAE(30, 3, n_hidden=16, n_latent=4, classifier_hidden=16).train()
    mb = _minibatch()
    off, on = _loss(module, mb, 0.0), _loss(module, mb, 1.0)
    # at weight 0 the prior p(z|u,c) still shapes z (authors' implementation): its decoder gets gradient
    off["total"].mean().backward()
    grad = sum(float(p.grad.abs().sum()) for p in module.z_decoder.parameters() if p.grad is not None)
    assert grad > 0
    half = _loss(module, mb, 0.5)
    # total is affine in the weight, and z level + weighted part = the whole KL of z + KL(l) (float32 sums)
    weighted = (on["total"] - off["total"]).detach()
    torch.testing.assert_close(half["total"].detach(), off["total"].detach() + 0.5 * weighted, rtol=1e-4, atol=1e-3)
    z_level = (off["total"] - off["recon"]).detach()
    torch.testing.assert_close(z_level + weighted, (on["kl_z"] + on["kl_l"]).detach(), rtol=1e-4, atol=1e-3)
    # KL(u) and KL(c) are non-negative (KL(c) = log C for labelled cells)
    assert bool((weighted >= -1e-5).all())
    labelled = mb.label >= 0
    assert bool((weighted[labelled] >= np.log(3) - 1e-5).all())


def test_a_lone_unlabelled_cell_in_a_training_minibatch_is_classified():
    torch.manual_seed(0)
    module = SCANVAE(30, 3, n_hidden=16, n_latent=4, classifier_hidden=16, classifier_layers=2).train()
    mb = _minibatch(n=20)
    mb.label[:] = torch.arange(20) % 3
    mb.label[5] = -1  # BatchNorm in training mode cannot normalise one cell alone
    out = _loss(module, mb, 1.0)
    assert bool(torch.isfinite(out["total"]).all())
    assert float(out["kl_z"][5]) != float(out["kl_z"][4])


def test_a_fully_labelled_minibatch_leaves_the_classifier_statistics_alone():
    """No unlabelled cell: U has no q(c|z) to compute, so the loss runs no classifier pass over the
    labelled cells (it would move the classifier's BatchNorm running statistics and cost a pass)."""
    torch.manual_seed(0)
    module = SCANVAE(30, 3, n_hidden=16, n_latent=4, classifier_hidden=16).train()
    mb = _minibatch(n=20)
    mb.label[:] = torch.arange(20) % 3
    norm = module.classifier.trunk.norms[0]
    before = norm.running_mean.clone()
    out = _loss(module, mb, 1.0)
    assert torch.equal(norm.running_mean, before)
    assert bool(torch.isfinite(out["total"]).all())


def test_marginal_labelled_elbo_ignores_labels_in_the_elbo():
    """labelled_elbo="marginal" (scvi-tools' choice): labelled cells are bounded like unlabelled
    ones, so the ELBO no longer depends on which cells carry labels; "observed" (the paper) does."""
    import torch

    from methods.native.scvi.data import CountData
    from methods.native.scvi.scanvi_module import SCANVAE

    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.poisson(2.0, size=(24, 15)).astype(np.float32))
    label = np.where(rng.random(24) < 0.5, rng.integers(0, 3, 24), -1)
    mb = CountData(X, np.zeros(24, dtype=int), label).minibatch(np.arange(24))
    out = {}
    for kind in ("observed", "marginal"):
        torch.manual_seed(0)
        module = SCANVAE(15, 3, n_latent=4, n_hidden=8, labelled_elbo=kind).eval()
        for labels in ("given", "hidden"):
            torch.manual_seed(1)
            lab = mb.label if labels == "given" else torch.full_like(mb.label, -1)
            out[kind, labels] = module.loss(mb.x, mb.nz, mb.batch, lab, kl_weight=1.0)["total"].detach()
    torch.testing.assert_close(out["marginal", "given"], out["marginal", "hidden"])
    torch.testing.assert_close(out["observed", "hidden"], out["marginal", "hidden"])
    assert not torch.allclose(out["observed", "given"], out["observed", "hidden"])
    with pytest.raises(ValueError, match="labelled_elbo"):
        SCANVAE(15, 3, labelled_elbo="both")


def test_a_given_split_and_all_labelled_match_the_masks_they_replace():
    """The GPU path hands the loss the (labelled, unlabelled) rows and tells the classification
    loss that every cell is labelled; the numbers are those of the mask path."""
    torch.manual_seed(0)
    module = SCANVAE(30, 3, n_hidden=16, n_latent=4, classifier_hidden=16).train()
    mb = _minibatch()
    label = mb.label.numpy()
    split = (torch.from_numpy(np.flatnonzero(label >= 0)), torch.from_numpy(np.flatnonzero(label < 0)))
    torch.manual_seed(1)
    given = module.loss(mb.x, mb.nz, mb.batch, mb.label, kl_weight=0.5, split=split)
    found = _loss(module, mb, 0.5)
    for key in ("total", "kl_z"):
        assert torch.equal(given[key], found[key])
    z, lab = torch.randn(12, 4), torch.arange(12) % 3
    torch.manual_seed(2)
    masked = module.classification_loss(z, lab)
    torch.manual_seed(2)
    assert torch.equal(module.classification_loss(z, lab, all_labelled=True), masked)
    # another split (one labelled cell bounded by U instead) changes the bound: the argument is used
    torch.manual_seed(1)
    other = (split[0][1:], torch.cat([split[0][:1], split[1]]))
    assert not torch.equal(module.loss(mb.x, mb.nz, mb.batch, mb.label, kl_weight=0.5, split=other)["total"],
                           found["total"])
