"""asv timings of a small end-to-end scenario and of building its report.

The pair scenario (paper, Fig. 2) on the simulator with PCA, one seed, run in-process (no job
isolation, so ``peakmem_*`` sees the work) and without the job cache (every number computed).
``time_reference_matmul`` is the in-run yardstick: report the others as ratios to it.
"""
import shutil
import tempfile
from pathlib import Path

import numpy as np


def _run_pair(run_dir):
    from benchmark.runner import run

    return run(["pair"], datasets=["simulated"], methods=["pca"], profile="quick", seeds=[0], cache_dir=False,
               run_dir=run_dir, progress=False, isolated=False)


class SmallScenario:
    timeout = 600
    number = 1
    repeat = (1, 3, 60.0)

    def setup_cache(self):
        # one finished run folder for the report benchmark (asv keeps it for the session)
        run_dir = Path(tempfile.mkdtemp(prefix="asv-hb-")) / "run"
        _run_pair(run_dir)
        return str(run_dir)

    def setup(self, run_dir):
        self.tmp = Path(tempfile.mkdtemp(prefix="asv-hb-pair-"))

    def teardown(self, run_dir):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def time_pair_scenario_pca(self, run_dir):
        _run_pair(self.tmp / "run")

    def peakmem_pair_scenario_pca(self, run_dir):
        _run_pair(self.tmp / "run")

    def time_build_report(self, run_dir):
        from benchmark.reports import build_report

        build_report(Path(run_dir), umap=False)

    def time_reference_matmul(self, run_dir):
        a = np.random.default_rng(0).normal(size=(600, 600))
        for _ in range(5):
            a = a @ a / 600.0
