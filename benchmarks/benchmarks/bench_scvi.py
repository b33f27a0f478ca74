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
