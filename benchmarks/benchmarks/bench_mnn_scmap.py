"""asv timings of the native MNN (mnnCorrect, fastMNN) and scmap (cluster, cell) ports.

Data are synthetic (seeded) so the suite needs no shared folder: log-expression of 3 cell types
with marker genes, two batches with a gene-wise shift, at growing sizes so growth is visible.
``time_reference_pca`` (scikit-learn PCA of the same matrix) is the in-run yardstick: report
each method as a ratio to it, never as an absolute claim.
"""
import numpy as np

N_GENES = 500


def _make(n_cells: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    types = rng.integers(0, 3, n_cells)
    batch = rng.random(n_cells) < 0.5
    mu = np.full((n_cells, N_GENES), 0.5)
    for t in range(3):
        mu[types == t, t * 30:(t + 1) * 30] = 8.0
    mu[batch] *= rng.lognormal(0.0, 0.5, N_GENES)
    counts = rng.poisson(mu).astype(np.float64)
    logx = np.log2(counts / np.maximum(counts.sum(1, keepdims=True), 1) * 1e4 + 1)
    return {"counts": counts, "log": logx, "batch": batch, "types": np.array(list("ABC"))[types],
            "genes": np.array([f"g{i}" for i in range(N_GENES)])}


class MNN:
    params = [500, 2000]
    param_names = ["n_cells"]
    timeout = 600

    def setup_cache(self):
        return {n: _make(n) for n in self.params}

    def _batches(self, data, n):
        d = data[n]
        return [d["log"][~d["batch"]], d["log"][d["batch"]]]

    def time_mnn_correct(self, data, n):
        from methods.native.mnn import mnn_correct

        mnn_correct(self._batches(data, n), k=20)

    def time_fast_mnn(self, data, n):
        from methods.native.mnn import fast_mnn

        fast_mnn(self._batches(data, n), k=20, d=50)

    def time_reference_pca(self, data, n):
        from sklearn.decomposition import PCA

        PCA(n_components=50, svd_solver="full").fit_transform(data[n]["log"])

    def peakmem_mnn_correct(self, data, n):
        from methods.native.mnn import mnn_correct

        mnn_correct(self._batches(data, n), k=20)


class Scmap:
    params = [1000, 4000]
    param_names = ["n_cells"]
    timeout = 600

    def setup_cache(self):
        return {n: _make(n, seed=1) for n in self.params}

    @staticmethod
    def _split(d):
        ref = np.arange(d["counts"].shape[0]) % 2 == 0
        return ref, ~ref

    def time_scmap_cluster(self, data, n):
        from methods.native import scmap

        d = data[n]
        ref, qry = self._split(d)
        fs = scmap.select_features(d["counts"][ref], d["log"][ref], d["genes"], n_features=200)
        index = scmap.index_cluster(d["log"][ref], d["genes"], d["types"][ref], fs.selected_genes)
        scmap.scmap_cluster(d["log"][qry], d["genes"], index)

    def time_scmap_cell(self, data, n):
        from methods.native import scmap

        d = data[n]
        ref, qry = self._split(d)
        fs = scmap.select_features(d["counts"][ref], d["log"][ref], d["genes"], n_features=200)
        index = scmap.index_cell(d["log"][ref], d["genes"], fs.selected_genes, seed=0)
        scmap.scmap_cell(d["log"][qry], d["genes"], index, w=10)

    def time_reference_pca(self, data, n):
        from sklearn.decomposition import PCA

        PCA(n_components=50, svd_solver="full").fit_transform(data[n]["log"])

    def peakmem_scmap_cell(self, data, n):
        self.time_scmap_cell(data, n)
