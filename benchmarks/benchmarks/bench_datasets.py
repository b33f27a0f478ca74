"""asv timings and peak memory of the simulator (the built-in default data).

Issue 3 asks for 100,000 cells x 2,000 genes in under 30 s on the 2-core machine.
``time_reference_numpy_nb`` is the in-run yardstick: numpy's own gamma-Poisson NB draw
of a matrix the same size (chunked the same way, nothing else), so report
``time_simulate / time_reference_numpy_nb`` rather than absolute seconds. Run with
``OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE`` and say so next to the numbers.
"""
import numpy as np

N_GENES = 2000
CHUNK = 4096


class Simulate:
    params = [10_000, 100_000]
    param_names = ["n_cells"]
    timeout = 300
    number = 1
    repeat = (1, 3, 120.0)

    def setup(self, n_cells):
        from datasets import simulate

        simulate(n_cells=200, n_genes=100, seed=0)  # compile (or load) the numba kernels once

    def time_simulate(self, n_cells):
        from datasets import simulate

        simulate(n_cells=n_cells, n_genes=N_GENES, seed=0)

    def peakmem_simulate(self, n_cells):
        from datasets import simulate

        simulate(n_cells=n_cells, n_genes=N_GENES, seed=0)

    def time_reference_numpy_nb(self, n_cells):
        # dense NB of the same size with numpy only: mean 0.75 (the simulator's default
        # library of 1,500 over 2,000 genes), inverse dispersion 5
        rng = np.random.default_rng(0)
        for start in range(0, n_cells, CHUNK):
            rows = min(CHUNK, n_cells - start)
            rng.poisson(rng.gamma(5.0, 0.75 / 5.0, (rows, N_GENES)))
