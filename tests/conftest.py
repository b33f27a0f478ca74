"""Shared fixtures for the whole suite.

* ``shared_data_dir``: the staged real datasets (``HARMONIZATION_BENCH_SHARED_DATA``, default
  ``<repo>/../shared/data``); the test is skipped when the folder is absent.
* ``reference_r_dir``: the R reference outputs (``HARMONIZATION_BENCH_REFERENCE_R``), same rule.
* ``tiny_adata``: a small AnnData obeying the data contract, built with numpy only (no simulator
  needed): 2 batches, 3 cell types, Poisson counts with a type signal and a batch shift.
* ``small_sim``: ``datasets.simulate`` at a small size (skipped until the simulator exists).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

REPO_ROOT = Path(__file__).resolve().parents[1]


def _folder(env_var: str, default: Path) -> Path:
    return Path(os.environ.get(env_var) or default)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    path = _folder("HARMONIZATION_BENCH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent (set HARMONIZATION_BENCH_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def reference_r_dir() -> Path:
    path = _folder("HARMONIZATION_BENCH_REFERENCE_R", REPO_ROOT.parent / "shared" / "reference_r")
    if not path.is_dir():
        pytest.skip(f"R reference folder {path} is absent (set HARMONIZATION_BENCH_REFERENCE_R)")
    return path


def make_tiny_adata(n_cells: int = 120, n_genes: int = 40, seed: int = 0):
    """Counts with 3 types (each up-regulating its own 5 genes) in 2 batches (batch 1 scaled x2)."""
    import anndata as ad

    rng = np.random.default_rng(seed)
    types = np.array(["A", "B", "C"])[rng.integers(0, 3, n_cells)]
    batch = np.where(np.arange(n_cells) % 2 == 0, "b0", "b1")
    mu = np.full((n_cells, n_genes), 1.0)
    for i, t in enumerate("ABC"):
        mu[types == t, i * 5:(i + 1) * 5] *= 8.0
    mu[batch == "b1"] *= 2.0
    X = sp.csr_matrix(rng.poisson(mu).astype(np.float32))
    obs = pd.DataFrame({"batch": pd.Categorical(batch), "cell_type": pd.Categorical(types)},
                       index=[f"cell{i}" for i in range(n_cells)])
    var = pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)])
    return ad.AnnData(X=X, obs=obs, var=var)


@pytest.fixture
def tiny_adata():
    return make_tiny_adata()


@pytest.fixture(scope="session")
def small_sim():
    datasets = pytest.importorskip("datasets")
    if not hasattr(datasets, "simulate"):
        pytest.skip("datasets.simulate is not available yet")
    return datasets.simulate(n_cells=600, n_genes=200, n_batches=2, n_cell_types=4, seed=0)
