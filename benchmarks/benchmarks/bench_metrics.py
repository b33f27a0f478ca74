"""asv timings and peak memory of the hot metrics (benchmark.metrics) at growing sizes.

Data are synthetic and seeded (a 30-d latent of 5 types x 4 batches with a batch shift), so no
shared folder is needed. ``time_reference_knn`` (scikit-learn brute-force 90-NN of the same
latent, the step every graph metric starts from) is the in-run yardstick: report each metric as
a ratio to it. Run with ``OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE`` and say so with the numbers.
The comparison with scib-metrics lives in ``benchmarks/scripts/compare_scib_metrics.py``.
"""
import numpy as np

N_DIMS = 30


def _latent(n_cells: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, n_cells)
    batches = rng.integers(0, 4, n_cells)
    centres = rng.normal(scale=4.0, size=(5, N_DIMS))
    shifts = rng.normal(scale=1.0, size=(4, N_DIMS))
    X = centres[labels] + shifts[batches] + rng.normal(size=(n_cells, N_DIMS))
    return X, labels.astype(str), batches.astype(str)


class _BySize:
    """asv settings every suite here shares: two sizes, one call per sample, up to 3 samples."""
    params = [1_000, 10_000]
    param_names = ["n_cells"]
    timeout = 600
    number = 1
    repeat = (1, 3, 120.0)


class GraphMetrics(_BySize):
    def setup(self, n_cells):
        from benchmark.metrics import compute_neighbors

        self.X, self.y, self.b = _latent(n_cells)
        self.nn = compute_neighbors(self.X, 89)
        _ = self.nn.connectivities  # cached: graph metrics below share it, as in the suite

    def time_reference_knn(self, n_cells):
        from sklearn.neighbors import NearestNeighbors

        NearestNeighbors(n_neighbors=90, algorithm="brute").fit(self.X).kneighbors(self.X)

    def time_compute_neighbors(self, n_cells):
        from benchmark.metrics import compute_neighbors

        compute_neighbors(self.X, 89)

    def time_connectivities(self, n_cells):
        from benchmark.metrics.neighbors import umap_connectivities

        umap_connectivities(self.nn.indices, self.nn.distances)

    def time_batch_entropy_mixing(self, n_cells):
        from benchmark.metrics import batch_entropy_mixing

        batch_entropy_mixing(self.nn, self.b, k=50)

    def time_ilisi(self, n_cells):
        from benchmark.metrics import ilisi_knn

        ilisi_knn(self.nn, self.b)

    def time_kbet_per_label(self, n_cells):
        from benchmark.metrics import kbet_per_label

        kbet_per_label(self.nn.subset(49), self.b, self.y)

    def time_graph_connectivity(self, n_cells):
        from benchmark.metrics import graph_connectivity

        graph_connectivity(self.nn.subset(14), self.y)

    def peakmem_kbet_per_label(self, n_cells):
        from benchmark.metrics import kbet_per_label

        kbet_per_label(self.nn.subset(49), self.b, self.y)


class DenseMetrics(_BySize):
    def setup(self, n_cells):
        self.X, self.y, self.b = _latent(n_cells)
        self.X_pre = self.X + 3.0 * (self.b == "0")[:, None]  # more batch variance before "integration"

    def time_silhouette_label(self, n_cells):
        from benchmark.metrics import silhouette_label

        silhouette_label(self.X, self.y)

    def peakmem_silhouette_label(self, n_cells):
        from benchmark.metrics import silhouette_label

        silhouette_label(self.X, self.y)

    def time_bras(self, n_cells):
        from benchmark.metrics import bras

        bras(self.X, self.y, self.b)

    def time_pcr_comparison(self, n_cells):
        from benchmark.metrics import pcr_comparison

        pcr_comparison(self.X_pre, self.X, self.b)

    def time_scib_suite(self, n_cells):
        from benchmark.metrics import scib_suite

        scib_suite(self.X, self.b, self.y, self.X_pre)


class CellCycle(_BySize):
    """Cell-cycle conservation on a sparse log-expression of 2,000 genes (the 97 Tirosh genes
    among them), 4 batches: gene-set scores per batch, then (scores given) PCR on the expression
    and the latent; the suite's cost is the sum of the two timings."""

    def setup(self, n_cells):
        import scipy.sparse as sp

        from benchmark.metrics import cell_cycle_scores
        from benchmark.metrics.cell_cycle_genes import G2M_GENES, S_GENES

        rng = np.random.default_rng(0)
        self.X, _, self.b = _latent(n_cells)
        n_genes = 2000
        counts = sp.random(n_cells, n_genes, density=0.1, format="csr", random_state=1,
                           data_rvs=lambda k: rng.poisson(3.0, k) + 1.0)
        counts.data = np.log1p(counts.data)
        self.L = counts
        self.genes = list(S_GENES + G2M_GENES) + [f"gene{i}" for i in range(n_genes - 97)]
        # scores are timed by time_cell_cycle_scores; the conservation timing is the PCR part only
        self.cc = cell_cycle_scores(self.L, self.genes, self.b)

    def time_cell_cycle_scores(self, n_cells):
        from benchmark.metrics import cell_cycle_scores

        cell_cycle_scores(self.L, self.genes, self.b)

    def time_cell_cycle_conservation(self, n_cells):
        from benchmark.metrics import cell_cycle_conservation

        cell_cycle_conservation(self.L, self.X, self.cc, self.b)
