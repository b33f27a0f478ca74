"""CUDA paths of the native scVI / scANVI, checked against the CPU code they stand in for.

Skipped without a GPU (CI has none). On a GPU machine the rest of the model tests also run on
CUDA, since ``device=None`` picks it; these tests add what only a GPU shows: the autograd
likelihood used on CUDA equals the fused CPU kernel, a model trained on CUDA reloads on the CPU
with the same posterior, and a CUDA run repeats under its seed.
"""
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from methods.native.scvi import SCANVI, SCVI
from methods.native.scvi.distributions import SparseCounts, count_nll_training
from methods.native.scvi.fused import fused_available, fused_count_nll

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")


def _likelihood_inputs(n=64, G=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.poisson(torch.rand(n, G, generator=g) * 3, generator=g) * (torch.rand(n, G, generator=g) < 0.3)
    x[0, 0], x[1, 1] = 40.0, 300.0  # large counts too
    log_mu = torch.randn(n, G, generator=g) - 1
    log_theta = 1.5 * torch.randn(G, generator=g)
    pi = torch.randn(n, G, generator=g)
    return x, log_mu, log_theta, pi


@pytest.mark.parametrize("likelihood", ["zinb", "nb"])
def test_cuda_autograd_likelihood_matches_the_cpu_fused_kernel(likelihood):
    x, lm0, lt0, pi0 = _likelihood_inputs()
    weights = torch.linspace(0.1, 1.0, x.shape[0])

    def run(device, fn):
        lm, lt, pi = (t.to(device, copy=True).requires_grad_() for t in (lm0, lt0, pi0))  # fresh leaves
        val = fn(x.to(device), lm, lt, pi if likelihood == "zinb" else None)
        (val * weights.to(device)).sum().backward()
        return val.detach().cpu(), [None if t.grad is None else t.grad.cpu() for t in (lm, lt, pi)]

    assert not fused_available(lm0.to(CUDA)), "the numba kernel is CPU-only; CUDA must take the autograd path"
    r, c = x.nonzero(as_tuple=True)
    on_cpu, g_cpu = run("cpu", lambda xx, lm, lt, pi: fused_count_nll(likelihood, xx, lm, lt, pi))
    nz = SparseCounts(r.to(CUDA), c.to(CUDA), x[r, c].to(CUDA))
    on_gpu, g_gpu = run(CUDA, lambda xx, lm, lt, pi: count_nll_training(likelihood, xx, nz, lm, lt, pi))
    torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-5, atol=2e-3)
    for a, b in zip(g_gpu, g_cpu):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def cuda_scvi():
    from conftest import make_tiny_adata

    adata = make_tiny_adata(n_cells=300, n_genes=40)
    return adata, _train_scvi(adata, seed=0)


def _train_scvi(adata, seed):
    model = SCVI(adata, "batch", n_hidden=32, seed=seed, device="cuda")
    return model.train(40, n_epochs_kl_warmup=5, progress_bar=False)


def test_scvi_trains_on_cuda_and_reloads_on_cpu_with_the_same_posterior(cuda_scvi, tmp_path):
    adata, model = cuda_scvi
    assert model.device.type == "cuda"
    assert all(p.is_cuda for p in model.module.parameters())
    hist = model.history_["train_loss"]
    assert np.isfinite(hist).all() and hist[-1] < 0.5 * hist[5]  # after the KL warm-up
    z = model.get_latent_representation()
    scale = model.get_normalized_expression(transform_batch="b0")
    assert np.isfinite(z).all() and np.isfinite(model.get_marginal_ll(n_mc_samples=20))
    np.testing.assert_allclose(scale.sum(1), 1.0, rtol=1e-4)

    model.save(tmp_path / "m")
    on_cpu = SCVI.load(tmp_path / "m", adata, device="cpu")
    assert on_cpu.device.type == "cpu" and all(not p.is_cuda for p in on_cpu.module.parameters())
    np.testing.assert_allclose(on_cpu.get_latent_representation(), z, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(on_cpu.get_normalized_expression(transform_batch="b0"), scale, rtol=1e-3, atol=1e-6)
    # the ELBO draws z and l, from different generators on each device: equal up to Monte Carlo noise
    gpu_elbo, cpu_elbo = model.get_elbo(), on_cpu.get_elbo()
    assert abs(gpu_elbo - cpu_elbo) < 0.02 * abs(cpu_elbo)


def test_cuda_training_repeats_under_its_seed(cuda_scvi):
    """Same seed, same result up to float reordering (CUDA's index_add and reductions use atomics,
    so bitwise equality is not promised there; the CPU path is bitwise, tested elsewhere)."""
    adata, model = cuda_scvi
    again, other = _train_scvi(adata, seed=0), _train_scvi(adata, seed=1)
    z, z_again, z_other = (m.get_latent_representation() for m in (model, again, other))
    np.testing.assert_allclose(z_again, z, atol=1e-3)
    assert np.abs(z_other - z).max() > 1e-2


def test_scanvi_on_cuda_from_scvi_classifies_and_finds_planted_genes(cuda_scvi):
    adata, scvi_model = cuda_scvi
    adata = adata.copy()
    vis = adata.obs["cell_type"].astype(object).copy()
    hidden = np.random.default_rng(0).random(adata.n_obs) < 0.7
    vis[hidden] = np.nan
    adata.obs["visible"] = vis.astype("category")
    model = SCANVI.from_scvi(scvi_model, adata, "visible", classifier_hidden=32).train(20, progress_bar=False)
    assert model.device.type == "cuda"
    proba = model.predict_proba()
    np.testing.assert_allclose(proba.to_numpy().sum(1), 1.0, rtol=1e-5)
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    assert (model.predict()[hidden] == truth[hidden]).mean() > 0.8
    de = model.differential_expression(groupby="cell_type", group1="A", group2=None, mode="labels", n_samples=2000)
    planted = np.zeros(adata.n_vars, bool)
    planted[:5] = True  # type A up-regulates genes 0-4 (conftest.make_tiny_adata)
    assert roc_auc_score(planted, de["score"]) > 0.9
