"""Input builders shared by several scenarios: the dataset pairs of the shared stand-ins
(``../shared/data/MANIFEST.md``), the simulator, and the perturbations the paper applies.

Inputs are data, not method runs: they do not depend on the run's seed unless a scenario samples
from them on purpose (seed cells, DE subsamples); a method's seed is its own random start, as the
paper's repeats are.
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .base import SIMULATED, concat, drop_empty, load_source, select_genes, simulate, subsample

#: the cross-protocol pair of CellBench (3 lines each): the stand-in for the paper's
#: multi-technology pairs (MANIFEST.md, cellbench_mixology)
CELLBENCH_PAIR = ("CEL-seq2_3cl", "Drop-seq_3cl")
#: 10x PBMC pair: FACS-sorted populations + pbmc3k, on their shared coarse labels
PBMC_PAIR = "pbmc_facs+pbmc3k"
#: the paper's own pairs (Fig. 2: marrow 10x/SS2, dentate gyrus 10x/C1; PBMC-8K/68K), run when the
#: dataset registry finds them in its cache (else a skipped row says where to put the files)
PAPER_PAIRS = ("marrow_tm_10x+marrow_tm_ss2", "dentate_gyrus_10x+dentate_gyrus_c1", "pbmc_8k+pbmc_68k")
#: the paper's held-out pair (Fig. 3): PBMC-CITE kept whole, PBMC-8K perturbed
PAPER_HELDOUT = ("pbmc_cite+pbmc_8k",)
_PBMC_COARSE = {  # both datasets' coarse labels onto one vocabulary (types in both)
    "T cell": "T cell", "B cell": "B cell", "NK cell": "NK cell",
    "CD14+ monocyte": "Monocyte", "Monocyte": "Monocyte",
}


def prepare(adata, profile, *, n_genes=None, max_cells="profile", cell_cycle=False):
    """Cap the cells (stratified by batch, fixed seed), select genes as the paper, drop empties.

    ``cell_cycle``: also score S and G2/M phase on ALL genes before the selection (the selected
    genes rarely hold enough of the Tirosh lists) into ``obsm["cell_cycle_scores"]``, when the
    data names at least MIN_GENES_PER_PHASE genes of each list; the caller moves it to the truth.
    """
    cap = profile.max_cells if max_cells == "profile" else max_cells
    adata = subsample(adata, cap, seed=0)
    scores = cell_cycle_scores_of(adata) if cell_cycle else None
    adata = select_genes(adata, profile.n_genes if n_genes is None else n_genes)
    if scores is not None:
        adata = adata.copy()  # never write into the caller's object
        adata.obsm["cell_cycle_scores"] = scores
    return drop_empty(adata)


def cell_cycle_scores_of(adata) -> Optional[np.ndarray]:
    """(cells, 2) S and G2/M scores (scib's cell_cycle: scanpy scores per batch on log-normalised
    counts), or None when the genes are not named by enough cell-cycle symbols (e.g. the simulator)."""
    from benchmark.metrics.cell_cycle_genes import MIN_GENES_PER_PHASE, present_cell_cycle_genes
    from benchmark.metrics.conservation import cell_cycle_scores

    names = [str(g) for g in adata.var_names]
    _, s_genes, g2m_genes = present_cell_cycle_genes(names)
    if min(len(s_genes), len(g2m_genes)) < MIN_GENES_PER_PHASE:
        return None
    from datasets.preprocessing import log_normalize  # sparse in, sparse out: all genes stay cheap

    return cell_cycle_scores(log_normalize(adata.X), names, adata.obs["batch"].astype(str).to_numpy())


def simulated_pair(profile, *, n_cell_types=5, hidden_types=None, n_batches=2, n_cells=None, **kw):
    """The simulator with two batches (a planted batch effect) and nothing hidden by default."""
    return simulate(n_cells=n_cells or profile.sim_cells, n_genes=profile.sim_genes, n_batches=n_batches,
                    n_cell_types=n_cell_types, seed=0, hidden_types=hidden_types, **kw)


@functools.lru_cache(maxsize=8)
def _load(name):
    return load_source(name)


def load(name):
    """A registered dataset, read once per process (callers get their own copy)."""
    return _load(name).copy()


def cellbench_pair():
    """CEL-seq2 vs Drop-seq, 3 cell lines each (labels = genotype-demultiplexed cell lines)."""
    a = load("cellbench_mixology")
    keep = a.obs["batch"].astype(str).isin(CELLBENCH_PAIR).to_numpy()
    a = a[keep].copy()
    a.obs["batch"] = pd.Categorical(a.obs["batch"].astype(str), categories=list(CELLBENCH_PAIR))
    a.obs["cell_type"] = pd.Categorical(a.obs["cell_type"].astype(str))
    return a


def pbmc_pair():
    """pbmc_facs + pbmc3k on shared genes and shared coarse labels (T, B, NK, monocyte)."""
    parts = {}
    for name in PBMC_PAIR.split("+"):
        a = load(name)
        coarse = a.obs["cell_type_coarse"].astype(object).map(_PBMC_COARSE)
        a = a[coarse.notna().to_numpy()].copy()
        a.obs["cell_type"] = coarse[coarse.notna()].to_numpy()
        parts[name] = a
    return concat(parts)


def pair_source(source, profile, *, cell_cycle=False, **sim_kw):
    """(AnnData with exactly two batches, (batch A, batch B)) for a pair source name;
    ``sim_kw`` go to the simulator; ``cell_cycle`` as in :func:`prepare`."""
    if source == SIMULATED:
        a = simulated_pair(profile, **sim_kw)
    elif source == "cellbench_mixology":
        a = cellbench_pair()
    elif source == PBMC_PAIR:
        a = pbmc_pair()
    elif "+" in source:  # any two registered datasets, e.g. the paper's own pairs
        a = concat({name: load(name) for name in source.split("+")})
    else:
        raise ValueError(f"no pair is defined for source {source!r}; use one of "
                         f"{[SIMULATED, 'cellbench_mixology', PBMC_PAIR]}")
    a = prepare(a, profile, cell_cycle=cell_cycle)
    batches = list(a.obs["batch"].cat.categories if hasattr(a.obs["batch"], "cat") else pd.unique(a.obs["batch"]))
    present = [b for b in batches if (a.obs["batch"].astype(str) == str(b)).any()]
    a.obs["batch"] = pd.Categorical(a.obs["batch"].astype(str), categories=[str(b) for b in present])
    return a, tuple(str(b) for b in present[:2])


def thin_counts(X, keep_prob: np.ndarray, rng) -> sp.csr_matrix:
    """Binomial thinning of counts with a per-gene capture probability: a technical batch effect
    (library size and gene-wise bias) that leaves the biology untouched."""
    X = sp.csr_matrix(X)
    data = X.data.astype(np.int64)
    p = keep_prob[X.indices]
    out = sp.csr_matrix((rng.binomial(data, p).astype(np.float32), X.indices.copy(), X.indptr.copy()),
                        shape=X.shape)
    out.eliminate_zeros()
    return out


def split_with_batch_effect(adata, *, seed: int = 0, names=("A", "B"), mean_capture: float = 0.5,
                            gene_sd: float = 0.5, drop_b=None):
    """Split a one-batch dataset into two halves and plant a technical effect in the second
    (binomial thinning, per-gene capture ~ mean_capture * logNormal(0, gene_sd), capped at 1).

    ``drop_b``: optional boolean mask of cells to remove from the second half (cells unique to
    the first dataset, as the paper's HEMATO-Tusi terminal states).
    """
    rng = np.random.default_rng(seed)
    n = adata.n_obs
    in_b = rng.random(n) < 0.5
    if drop_b is not None:
        keep = ~(in_b & np.asarray(drop_b))
        adata, in_b = adata[keep].copy(), in_b[keep]
    else:
        adata = adata.copy()
    capture = np.minimum(1.0, mean_capture * np.exp(rng.normal(0, gene_sd, adata.n_vars)))
    X = sp.csr_matrix(adata.X)
    Xb = thin_counts(X[np.flatnonzero(in_b)], capture, rng)
    rows = sp.vstack([X[np.flatnonzero(~in_b)], Xb]).tocsr()
    order = np.concatenate([np.flatnonzero(~in_b), np.flatnonzero(in_b)])
    out = adata[order].copy()
    out.X = rows.astype(np.float32)
    out.obs["batch"] = pd.Categorical(np.where(in_b[order], names[1], names[0]), categories=list(names))
    return drop_empty(out)
