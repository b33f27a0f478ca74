"""asv timings of the native scVI / scANVI: one training epoch, and peak memory.

Synthetic seeded NB counts (1,000 genes, 2 batches, 4 types; half the cells labelled for
scANVI), so the suite needs no shared folder. ``time_reference_mlp_epoch`` (a plain torch
encoder/decoder of the same layer sizes with a Poisson loss, one epoch over the same cells) is
the in-run yardstick: report scVI/scANVI as ratios to it. The comparison with scvi-tools lives
in benchmarks/scripts/scvi_vs_scvitools.py (a peer in another interpreter).
"""
import numpy as np

N_GENES = 1000


def _make(n_cells: int, seed: int = 0):
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    types = rng.integers(0, 4, n_cells)
    batch = rng.integers(0, 2, n_cells)
    base = rng.gamma(0.6, 1.0, N_GENES)
    mu = base * rng.lognormal(0, 0.3, (n_cells, 1))
    for t in range(4):
        mu[types == t, t * 40:(t + 1) * 40] *= 6.0
    mu[batch == 1] *= 1.5
    X = rng.negative_binomial(4, 4 / (4 + mu)).astype(np.float32)
    labels = np.array(list("ABCD"), dtype=object)[types]
    labels[rng.random(n_cells) < 0.5] = None
    obs = pd.DataFrame({"batch": pd.Categorical(batch.astype(str)), "visible": pd.Categorical(labels)},
                       index=[f"c{i}" for i in range(n_cells)])
    return ad.AnnData(sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(N_GENES)]))


class ScviEpoch:
    params = [2000, 10000]
    param_names = ["n_cells"]
    timeout = 900
    number = 1
    repeat = 3

    def setup_cache(self):
        return {n: _make(n) for n in self.params}

    def setup(self, data, n):
        import torch

        torch.set_num_threads(1)
        from methods.native.scvi import SCANVI, SCVI

        self.scvi = SCVI(data[n], "batch", seed=0)
        self.scanvi = SCANVI(data[n], "batch", "visible", scheme="joint", seed=0)
        self.scvi.train(1)  # load the compiled likelihood kernel outside the timing
        self.adata = data[n]

    def time_scvi_epoch(self, data, n):
        self.scvi.train(1)

    def time_scanvi_epoch(self, data, n):
        self.scanvi.train(1)

    def time_reference_mlp_epoch(self, data, n):
        import torch

        X = torch.from_numpy(self.adata.X.toarray())
        G = X.shape[1]
        enc = torch.nn.Sequential(torch.nn.Linear(G, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                                  torch.nn.ReLU(), torch.nn.Linear(128, 10))
        dec = torch.nn.Sequential(torch.nn.Linear(10, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                                  torch.nn.ReLU(), torch.nn.Linear(128, G))
        opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)
        for start in range(0, X.shape[0], 128):
            xb = X[start:start + 128]
            rate = dec(enc(torch.log1p(xb)))
            loss = torch.nn.functional.poisson_nll_loss(rate, xb, log_input=True)
            opt.zero_grad()
            loss.backward()
            opt.step()

    def peakmem_scvi_epoch(self, data, n):
        self.scvi.train(1)


class ScanviStepThreads:
    """One scANVI epoch (10,000 cells, Algorithm 1) at 2 torch threads: the one-thread step
    (overlap=False) against the step split over two threads (overlap=True); their ratio is the
    split's gain on this machine."""

    params = [[False, True]]
    param_names = ["overlap"]
    timeout = 900
    number = 1
    repeat = 3

    def setup_cache(self):
        return _make(10000)

    def setup(self, data, overlap):
        import torch

        torch.set_num_threads(2)
        from methods.native.scvi import SCANVI

        self.model = SCANVI(data, "batch", "visible", scheme="joint", seed=0, overlap=overlap)
        self.model.train(1)  # compiled kernels and the optimizer's thread choice outside the timing

    def time_scanvi_epoch(self, data, overlap):
        self.model.train(1)


class LikelihoodAndDropout:
    """The fused CPU kernels against the autograd/ATen code they replace, in the same run.

    One 128-cell x 2,000-gene minibatch (15% non-zero counts; the 20,000-cell speed set has 22%), forward and
    backward of the per-cell ZINB negative log-likelihood: ``fused_count_nll`` (one numba pass per cell,
    methods/native/scvi/fused.py) vs ``count_nll_training`` (the same math as torch ops). Dropout masks for a
    590 x 128 layer (scANVI's (cell, class) rows): ``dropout_keep_mask`` vs ``F.dropout``.
    """

    number = 20
    repeat = 5

    def setup(self):
        import torch

        from methods.native.scvi.distributions import SparseCounts

        torch.set_num_threads(1)
        g = torch.Generator().manual_seed(0)
        n, G = 128, 2000
        self.x = (torch.poisson(torch.rand(n, G, generator=g) * 2, generator=g)
                  * (torch.rand(n, G, generator=g) < 0.26)).float()  # 15% non-zero
        r, c = self.x.nonzero(as_tuple=True)
        self.nz = SparseCounts(r, c, self.x[r, c])
        self.log_mu = (torch.randn(n, G, generator=g) - 3).requires_grad_()
        self.log_theta = torch.randn(G, generator=g).requires_grad_()
        self.pi = torch.randn(n, G, generator=g).requires_grad_()
        self.h = torch.randn(590, 128, generator=g)
        self.time_fused_zinb()  # load the compiled kernels outside the timing
        self.time_dropout_mask()
        self.time_autograd_zinb()

    def _zinb(self, fn):
        value = fn("zinb", self.x, self.nz, self.log_mu, self.log_theta, self.pi)
        value.sum().backward()
        for t in (self.log_mu, self.log_theta, self.pi):
            t.grad = None

    def time_fused_zinb(self):
        from methods.native.scvi.fused import fused_count_nll

        self._zinb(lambda lik, x, nz, lm, lt, pi: fused_count_nll(lik, x, lm, lt, pi, nz))

    def time_autograd_zinb(self):
        from methods.native.scvi.distributions import count_nll_training

        self._zinb(count_nll_training)

    def time_dropout_mask(self):
        from methods.native.scvi.module import dropout_keep_mask

        dropout_keep_mask(self.h.shape, 0.1)

    def time_torch_dropout(self):
        import torch.nn.functional as F

        F.dropout(self.h, 0.1, True)


class LikelihoodRowBlocks:
    """The fused ZINB kernel at 2 torch threads, each call after a decoder-sized GEMM as in training
    (torch's OpenMP worker is still spinning then): row blocks on torch's own OpenMP team (the
    default), on Python threads (the fallback without torch's libgomp), and on one thread."""

    params = [["openmp", "python_threads", "one_thread"]]
    param_names = ["runner"]
    number = 20
    repeat = 5

    def setup(self, runner):
        import torch

        from methods.native.scvi import fused

        self.minibatch = LikelihoodAndDropout()
        self.minibatch.setup()
        self.a, self.b = torch.randn(128, 128), torch.randn(128, 4000)
        self._saved = (torch.get_num_threads(), fused._openmp)
        if runner == "openmp" and fused._openmp() is None:
            raise NotImplementedError("torch here does not run its ops on a libgomp beside it")
        if runner == "python_threads":
            fused._openmp = lambda: None
        torch.set_num_threads(1 if runner == "one_thread" else 2)
        self.time_fused_zinb_after_gemm(runner)

    def teardown(self, runner):
        import torch

        from methods.native.scvi import fused

        torch.set_num_threads(self._saved[0])
        fused._openmp = self._saved[1]

    def time_fused_zinb_after_gemm(self, runner):
        import torch

        torch.mm(self.a, self.b)
        self.minibatch.time_fused_zinb()
