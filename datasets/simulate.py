"""The simulator: the built-in default data of the benchmark.

A small generative model with the structure the scANVI paper's scenarios need, with the
truth known: negative-binomial counts (the scVI likelihood family, paper Methods "scVI
generative model") from cell types arranged in a two-level hierarchy, a branching
trajectory with a true pseudotime (the HEMATO / Paul-Tusi scenario), per-batch technical
effects (library size, gene-wise multiplicative bias, dropout), cell types absent from
some batches (the paper's "held-out cell type" experiments), a protein panel driven by
cell type (PBMC-CITE), and marker / differentially expressed genes with known effect
sizes (the DE experiments).

Model, for cell ``i`` of batch ``b`` and gene ``g``::

    log rate_ig = base_g + coarse_eff[coarse(i), g] + fine_eff[type(i), g]   (cluster cells)
    mu_ig       = s_i * exp(log rate_ig + gene_bias[b, g])
    x_ig        ~ NB(mean mu_ig, inverse dispersion theta_g)
    x_ig        <- 0 with probability sigmoid(-(log mu_ig - m_b))           (dropout, x_ig > 0)

with ``s_i`` log-normal around a per-batch library scale. Trajectory cells interpolate
their log rate between anchor profiles (see :func:`simulate`). Everything random comes
from ``numpy.random.SeedSequence(seed)``, split into independent streams for the gene
programs, the cells, the counts and the proteins, so the same seed gives the same data.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional, Union

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .contract import validate

__all__ = ["simulate"]

_LN2 = np.log(2.0)
#: cells per chunk of count sampling; fixed so the random streams (and the data) do
#: not depend on anything but the seed and the sizes
_CHUNK = 4096
#: the trajectory uses the first three cell types: root -> branch point -> two tips
_N_TRAJ = 3


def simulate(
    n_cells: int = 2000,
    n_genes: int = 500,
    n_batches: int = 2,
    n_cell_types: int = 5,
    seed: int = 0,
    *,
    n_coarse_types: Optional[int] = None,
    hidden_types: Union[str, Mapping, None] = "auto",
    trajectory: bool = True,
    branch_point: float = 0.4,
    n_proteins: int = 10,
    n_markers: Optional[int] = None,
    frac_de: float = 0.05,
    frac_de_coarse: float = 0.05,
    de_log2fc: tuple = (1.0, 3.0),
    library_size: float = 1500.0,
    dispersion: float = 5.0,
    batch_library_sd: float = 0.35,
    batch_gene_sd: float = 0.3,
    dropout: bool = True,
    dropout_midpoint: float = -2.5,
    dropout_midpoint_sd: float = 0.5,
) -> AnnData:
    """Simulate a multi-batch single-cell dataset with known ground truth.

    Parameters
    ----------
    n_cells, n_genes, n_batches, n_cell_types
        Sizes. Batches get equal shares of cells (the first ones one more if it does not divide).
    seed
        Seeds everything; the same arguments give identical data.
    n_coarse_types
        Number of coarse types of the hierarchy (default ``max(1, round(sqrt(n_cell_types)))``).
        Fine type ``k`` belongs to coarse type ``k * n_coarse_types // n_cell_types``, so the
        trajectory's three types share a coarse type when ``n_coarse_types <= n_cell_types / 3``.
    hidden_types
        ``{batch: [cell types]}`` absent from that batch (batch and type given by name, e.g.
        ``"batch_0"`` / ``"type_4"``, or by index). ``"auto"`` (default) hides the last cell type
        from the first batch when there are at least two batches and three types; ``None`` or
        ``{}`` hides nothing.
    trajectory
        If True (needs ``n_cell_types >= 3``), types 0, 1, 2 form a branching trajectory:
        ``type_0`` cells run from the root (pseudotime 0) to the branch point
        (pseudotime ``branch_point``), ``type_1`` / ``type_2`` cells run from the branch point
        to their tip (pseudotime 1). Log rates interpolate linearly between anchors: root =
        profile of type 0, branch point = ``0.5 * type_0 + 0.25 * type_1 + 0.25 * type_2``,
        tips = profiles of types 1 and 2. Other cells have pseudotime NaN.
    n_proteins
        Size of the protein panel in ``obsm["protein"]`` (raw ADT-like counts). Protein ``j``
        is high in fine type ``j % n_cell_types`` for ``j < n_cell_types`` and in coarse type
        ``(j - n_cell_types) % n_coarse_types`` otherwise; 0 disables the panel.
    n_markers
        Marker genes per fine type: up-regulated in that type only (disjoint across types,
        drawn among the more expressed half of the genes). Default
        ``min(10, n_genes // (2 * n_cell_types))``.
    frac_de, frac_de_coarse
        Fraction of the genes given a further up/down effect per fine / per coarse type.
    de_log2fc
        Range (low, high) of the absolute log2 fold change of each effect (uniform).
    library_size
        Mean total count per cell before batch effects.
    dispersion
        Typical inverse dispersion ``theta`` of the NB (gene-wise, log-normal around it).
    batch_library_sd, batch_gene_sd
        SD of the per-batch log library scale and of the per-batch, per-gene log bias.
    dropout, dropout_midpoint, dropout_midpoint_sd
        Extra zeros: a non-zero count is set to 0 with probability
        ``sigmoid(-(log mu - m_b))``, ``m_b ~ Normal(dropout_midpoint, dropout_midpoint_sd)``.

    Returns
    -------
    AnnData obeying the data contract (validated), with

    - ``X``: CSR float32 counts; ``obs``: ``batch``, ``cell_type``, ``cell_type_coarse``,
      ``pseudotime`` (if ``trajectory``), ``lineage`` ("trunk" / "branch_1" / "branch_2",
      NaN off the trajectory), ``size_factor`` (true ``s_i``);
      ``uns["hierarchy"]``: fine -> coarse.
    - ``obsm["protein"]``: DataFrame of protein counts, columns ``protein_0`` ...
    - ``uns["markers"]``: dict fine type -> array of marker gene names, strongest first.
    - ``uns["de_genes"]``: ground-truth DE, a tidy DataFrame with columns
      ``group1, group2, gene, log2_fold_change`` (true log2 ratio of the batch-free mean
      expression of ``group1`` over ``group2``; for trajectory types the anchor profiles) for
      every ordered pair of fine types ``group1 < group2`` and every fine type against the
      rest (``group2 == "rest"``, the rest weighted equally), holding only the genes whose
      true effect is non-zero (|log2 fold change| > 1e-6). Stored as a DataFrame in ``uns``,
      it survives ``write_h5ad``.
    - ``varm["true_log_rate"]``: DataFrame genes x fine types of the batch-free log rates.
    - ``var["theta"]``: the NB inverse dispersion; ``uns["simulation"]``: the arguments;
      ``uns["source"]``: provenance.
    """
    if n_markers is None:
        n_markers = min(10, int(n_genes) // (2 * max(int(n_cell_types), 1)))
    _check_args(n_cells, n_genes, n_batches, n_cell_types, n_markers, branch_point, de_log2fc,
                trajectory)
    K, G, B = int(n_cell_types), int(n_genes), int(n_batches)
    C = int(n_coarse_types) if n_coarse_types is not None else max(1, int(round(np.sqrt(K))))
    if not 1 <= C <= K:
        raise ValueError(f"n_coarse_types must be between 1 and n_cell_types={K}, got {C}")
    types = [f"type_{k}" for k in range(K)]
    coarse = [f"group_{c}" for c in range(C)]
    batches = [f"batch_{b}" for b in range(B)]
    width = max(4, len(str(G - 1)))
    genes = [f"gene_{g:0{width}d}" for g in range(G)]
    coarse_of = np.arange(K) * C // K

    ss = np.random.SeedSequence(seed)
    ss_params, ss_cells, ss_counts, ss_protein = ss.spawn(4)
    rng = np.random.default_rng(ss_params)

    # -- gene programs (biology, batch-free) ------------------------------------------------
    base = rng.normal(0.0, 1.2, G)
    base += np.log(library_size) - _logsumexp(base)  # mean library = library_size
    theta = dispersion * np.exp(rng.normal(0.0, 0.3, G))
    eff_fine, eff_coarse, markers = _gene_effects(rng, base, K, C, n_markers, frac_de,
                                                  frac_de_coarse, de_log2fc)
    log_rate = base[None, :] + eff_coarse[coarse_of] + eff_fine  # K x G

    # -- technical effects per batch --------------------------------------------------------
    batch_scale = np.exp(rng.normal(0.0, batch_library_sd, B))
    gene_bias = rng.normal(0.0, batch_gene_sd, (B, G))
    drop_mid = rng.normal(dropout_midpoint, dropout_midpoint_sd, B)

    # -- cells ------------------------------------------------------------------------------
    present = _presence(hidden_types, batches, types)
    rng_c = np.random.default_rng(ss_cells)
    batch_idx, type_idx = _assign_cells(rng_c, n_cells, present)
    log_size = np.log(batch_scale[batch_idx]) + rng_c.normal(0.0, 0.25, n_cells)
    # anchors: K type profiles + the branch point; each cell = lerp between two anchors
    anchors = np.vstack([log_rate, 0.5 * log_rate[0] + 0.25 * log_rate[1] + 0.25 * log_rate[2]]
                        if trajectory else [log_rate])
    anchor_a, anchor_b = type_idx.copy(), type_idx.copy()
    weight = np.zeros(n_cells)
    pseudotime = np.full(n_cells, np.nan)
    lineage = np.full(n_cells, None, dtype=object)
    if trajectory:
        t = rng_c.random(n_cells)
        root = type_idx == 0
        pseudotime[root] = t[root] * branch_point
        anchor_b[root] = K
        weight[root] = t[root]
        lineage[root] = "trunk"
        for k in (1, 2):
            m = type_idx == k
            pseudotime[m] = branch_point + t[m] * (1.0 - branch_point)
            anchor_a[m] = K
            weight[m] = t[m]
            lineage[m] = f"branch_{k}"

    # -- counts -----------------------------------------------------------------------------
    X = _sample_counts(ss_counts, anchors, anchor_a, anchor_b, weight, log_size, batch_idx,
                       gene_bias, theta, drop_mid if dropout else None)

    obs = pd.DataFrame(
        {
            "batch": pd.Categorical.from_codes(batch_idx, batches),
            "cell_type": pd.Categorical.from_codes(type_idx, types),
            "cell_type_coarse": pd.Categorical.from_codes(coarse_of[type_idx], coarse),
            "size_factor": np.exp(log_size),
        },
        index=pd.Index([f"cell_{i:06d}" for i in range(n_cells)]),
    )
    if trajectory:
        obs["pseudotime"] = pseudotime
        obs["lineage"] = pd.Categorical(lineage, categories=["trunk", "branch_1", "branch_2"])
    var = pd.DataFrame({"theta": theta}, index=pd.Index(genes))
    adata = AnnData(X=X, obs=obs, var=var)
    adata.varm["true_log_rate"] = pd.DataFrame(log_rate.T, index=adata.var_names, columns=types)
    if n_proteins > 0:
        adata.obsm["protein"] = _simulate_protein(ss_protein, n_proteins, anchors.shape[0], K, C,
                                                  coarse_of, anchor_a, anchor_b, weight,
                                                  batch_idx, B, adata.obs_names, trajectory)
    adata.uns["hierarchy"] = {types[k]: coarse[coarse_of[k]] for k in range(K)}
    adata.uns["markers"] = {types[k]: np.asarray([genes[g] for g in markers[k]], dtype=object)
                            for k in range(K)}
    adata.uns["de_genes"] = _de_table(log_rate, types, genes)
    adata.uns["simulation"] = {
        "n_cells": n_cells, "n_genes": G, "n_batches": B, "n_cell_types": K,
        "n_coarse_types": C, "seed": seed, "trajectory": bool(trajectory),
        "branch_point": branch_point, "n_proteins": n_proteins, "n_markers": n_markers,
        "frac_de": frac_de, "frac_de_coarse": frac_de_coarse, "de_log2fc": list(de_log2fc),
        "library_size": library_size, "dispersion": dispersion,
        "batch_library_sd": batch_library_sd, "batch_gene_sd": batch_gene_sd,
        "dropout": bool(dropout), "dropout_midpoint": dropout_midpoint,
        "dropout_midpoint_sd": dropout_midpoint_sd,
        "hidden_types": {batches[b]: [types[k] for k in range(K) if not present[b, k]]
                         for b in range(B) if not present[b].all()},
    }
    adata.uns["source"] = {
        "name": "simulated", "url": "", "sha256": "", "license": "MIT",
        "citation": "harmonization-bench simulator (datasets.simulate); NB model as in "
                    "Lopez et al. 2018 (scVI) and Xu et al. 2021 (scANVI)",
        "version": "1",
    }
    return validate(adata, need_batches=1, need_labels=True, need_hierarchy=True,
                    need_pseudotime=bool(trajectory), need_protein=n_proteins > 0)


# -- pieces --------------------------------------------------------------------------------

def _check_args(n_cells, n_genes, n_batches, n_cell_types, n_markers, branch_point, de_log2fc,
                trajectory):
    for name, v in (("n_cells", n_cells), ("n_genes", n_genes), ("n_batches", n_batches),
                    ("n_cell_types", n_cell_types)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if n_markers < 0 or n_markers * n_cell_types > n_genes // 2:
        raise ValueError(f"n_markers * n_cell_types = {n_markers * n_cell_types} must be at most "
                         f"half the genes ({n_genes // 2}); lower n_markers or raise n_genes")
    if trajectory and n_cell_types < _N_TRAJ:
        raise ValueError("trajectory=True needs n_cell_types >= 3 (root and two tips); "
                         "pass trajectory=False")
    if not 0.0 < branch_point < 1.0:
        raise ValueError(f"branch_point must lie in (0, 1), got {branch_point}")
    lo, hi = de_log2fc
    if not 0 <= lo <= hi:
        raise ValueError(f"de_log2fc must be (low, high) with 0 <= low <= high, got {de_log2fc}")


def _logsumexp(v: np.ndarray) -> float:
    m = v.max()
    return float(m + np.log(np.exp(v - m).sum()))


def _gene_effects(rng, base, K, C, n_markers, frac_de, frac_de_coarse, de_log2fc):
    """Per-type and per-coarse-type log effects (natural log) and the marker genes.

    Markers are up in one fine type only and excluded from every other effect, so "marker
    of type k" is exact. The further DE genes are random up (60%) / down effects.
    """
    G = base.size
    lo, hi = de_log2fc
    # markers from the more expressed half, so they are detectable
    order = rng.permutation(np.flatnonzero(base >= np.median(base)))
    marker_genes = order[: K * n_markers].reshape(K, n_markers)
    others = np.setdiff1d(np.arange(G), marker_genes.ravel())
    eff_fine = np.zeros((K, G))
    eff_coarse = np.zeros((C, G))
    markers = []
    for k in range(K):
        size = rng.uniform(lo, hi, n_markers) * _LN2
        eff_fine[k, marker_genes[k]] = size
        markers.append(marker_genes[k][np.argsort(-size, kind="stable")])
    for eff, n_groups, frac in ((eff_coarse, C, frac_de_coarse), (eff_fine, K, frac_de)):
        n_de = min(int(round(frac * G)), others.size)
        if n_groups == 1 and eff is eff_coarse:
            continue  # a single coarse type has nothing to differ from
        for j in range(n_groups):
            g = rng.choice(others, n_de, replace=False)
            sign = np.where(rng.random(n_de) < 0.6, 1.0, -1.0)
            eff[j, g] += sign * rng.uniform(lo, hi, n_de) * _LN2
    return eff_fine, eff_coarse, markers


def _presence(hidden_types, batches, types) -> np.ndarray:
    """Boolean matrix batches x types: True where the type may occur in the batch."""
    B, K = len(batches), len(types)
    present = np.ones((B, K), dtype=bool)
    if isinstance(hidden_types, str):
        if hidden_types != "auto":
            raise ValueError(f"hidden_types must be 'auto', None or a dict, got {hidden_types!r}")
        if B >= 2 and K >= 3:
            present[0, K - 1] = False
        return present
    if not hidden_types:
        return present
    if not isinstance(hidden_types, Mapping):
        raise ValueError("hidden_types must be a dict {batch: [cell types]}")

    def index_of(x, names, what):
        if isinstance(x, (int, np.integer)) and 0 <= x < len(names):
            return int(x)
        if x in names:
            return names.index(x)
        raise ValueError(f"hidden_types: unknown {what} {x!r}; use one of {names} or an index")

    for b, ts in hidden_types.items():
        bi = index_of(b, batches, "batch")
        if isinstance(ts, (str, int, np.integer)):
            ts = [ts]
        for t in ts:
            present[bi, index_of(t, types, "cell type")] = False
        if not present[bi].any():
            raise ValueError(f"hidden_types hides every cell type from {batches[bi]}")
    return present


def _assign_cells(rng, n_cells, present):
    """Batch of each cell (equal shares) and cell type (Dirichlet proportions per batch)."""
    B, K = present.shape
    sizes = np.full(B, n_cells // B)
    sizes[: n_cells % B] += 1
    batch_idx = np.repeat(np.arange(B), sizes)
    type_idx = np.empty(n_cells, dtype=np.int64)
    start = 0
    for b in range(B):
        p = rng.dirichlet(np.full(K, 8.0)) * present[b]
        p /= p.sum()
        type_idx[start:start + sizes[b]] = rng.choice(K, sizes[b], p=p)
        start += sizes[b]
    return batch_idx, type_idx


def _sample_counts(ss, anchors, anchor_a, anchor_b, weight, log_size, batch_idx, gene_bias,
                   theta, drop_mid) -> sp.csr_matrix:
    """NB counts with dropout, sampled chunk by chunk straight into CSR.

    One random stream per chunk of :data:`_CHUNK` cells, so memory stays bounded and the
    numbers depend only on the seed. Sampling is exact (see :func:`_nb_csr_kernel`).
    """
    n, G = anchor_a.size, anchors.shape[1]
    chunks = range(0, n, _CHUNK)
    streams = ss.spawn(len(chunks))
    anchors32 = np.ascontiguousarray(anchors, dtype=np.float32)
    bias32 = np.ascontiguousarray(gene_bias, dtype=np.float32)
    theta64 = theta.astype(np.float64)
    use_dropout = drop_mid is not None
    mid = np.asarray(drop_mid if use_dropout else np.zeros(gene_bias.shape[0]), dtype=np.float64)
    log_high = np.float32(np.log(_HIGH_MEAN))
    parts = []
    for start, s in zip(chunks, streams):
        rng = np.random.default_rng(s)
        sl = slice(start, min(start + _CHUNK, n))
        rows = sl.stop - sl.start
        log_mu = np.empty((rows, G), dtype=np.float32)
        _log_mean_kernel(anchors32, anchor_a[sl], anchor_b[sl], weight[sl].astype(np.float32),
                         log_size[sl].astype(np.float32), bias32, batch_idx[sl], log_mu)
        # the rare large means use the gamma-Poisson mixture (row-major order, as the kernel)
        hr, hc = np.nonzero(log_mu >= log_high)
        hm, ht = np.exp(log_mu[hr, hc].astype(np.float64)), theta64[hc]
        high_x = rng.poisson(rng.gamma(ht, hm / ht)).astype(np.float32)
        high_pos = (hr.astype(np.int64) * G + hc).astype(np.int64)
        u = rng.random((rows, G), dtype=np.float32)
        u_drop = rng.random((rows, G), dtype=np.float32) if use_dropout else u[:0]
        indptr = np.zeros(rows + 1, dtype=np.int64)
        indices = np.empty(rows * G, dtype=np.int32)
        data = np.empty(rows * G, dtype=np.float32)
        nnz = _nb_csr_kernel(log_mu, theta64, u, u_drop, mid[batch_idx[sl]], use_dropout,
                             log_high, high_pos, high_x, indptr, indices, data)
        parts.append(sp.csr_matrix((data[:nnz].copy(), indices[:nnz].copy(), indptr),
                                   shape=(rows, G)))
    return sp.vstack(parts, format="csr")


#: means at or above this use numpy's gamma-Poisson sampler; below it, inversion (whose
#: cost grows with the mean) in the compiled kernel
_HIGH_MEAN = 20.0


@numba.njit(cache=True, nogil=True)
def _log_mean_kernel(anchors, a_idx, b_idx, w, log_size, bias, batch, out):  # pragma: no cover
    """out[i, g] = lerp(anchors[a_i, g], anchors[b_i, g], w_i) + bias[batch_i, g] + log_size_i."""
    n, G = out.shape
    for i in range(n):
        a, b, wi, ls, bi = a_idx[i], b_idx[i], w[i], log_size[i], batch[i]
        for g in range(G):
            out[i, g] = anchors[a, g] * (1 - wi) + anchors[b, g] * wi + bias[bi, g] + ls


@numba.njit(cache=True, nogil=True)
def _nb_csr_kernel(log_mu, theta, u, u_drop, mid, use_dropout, log_high, high_pos, high_x,
                   indptr, indices, data):  # pragma: no cover
    """Exact NB(mu, theta) draws by inversion of one uniform per entry, written as CSR.

    Why not ``poisson(gamma(...))`` on the dense matrix: most entries are small and zero,
    and two dense draws per entry dominated the run time. For ``mu < _HIGH_MEAN`` the count
    is the smallest ``k`` with ``CDF(k) >= u`` (pmf recursion from ``P(0)``; the sure zeros
    ``u <= 1 - mu <= P(0)`` cost one exp). Entries with a large mean take the precomputed
    ``high_x`` draws. A non-zero count is then dropped with probability
    ``sigmoid(-(log mu - mid))`` using ``u_drop``. Returns the number of stored entries.
    """
    n, G = log_mu.shape
    nnz = 0
    h = 0
    n_high = high_pos.size
    for i in range(n):
        for g in range(G):
            lm = log_mu[i, g]
            if lm >= log_high:
                x = 0.0
                if h < n_high and high_pos[h] == i * G + g:
                    x = high_x[h]
                    h += 1
            else:
                mu = np.exp(np.float64(lm))
                ui = np.float64(u[i, g])
                if ui <= 1.0 - mu:  # P(0) >= exp(-mu) >= 1 - mu: surely zero
                    continue
                th = theta[g]
                pk = np.exp(-th * np.log1p(mu / th))
                if ui <= pk:
                    continue
                q = mu / (th + mu)
                cdf = pk
                k = 0
                while cdf < ui and pk > 1e-300:
                    pk = pk * (k + th) / (k + 1) * q
                    cdf += pk
                    k += 1
                x = np.float32(k)
            if x == 0.0:
                continue
            if use_dropout:
                if u_drop[i, g] < 1.0 / (1.0 + np.exp(np.float64(lm) - mid[i])):
                    continue
            indices[nnz] = g
            data[nnz] = x
            nnz += 1
        indptr[i + 1] = nnz
    return nnz


def _simulate_protein(ss, P, n_anchors, K, C, coarse_of, anchor_a, anchor_b, weight, batch_idx,
                      B, obs_names, trajectory) -> pd.DataFrame:
    """Raw ADT-like protein counts: NB around a background, high in the driving type."""
    rng = np.random.default_rng(ss)
    base = rng.normal(np.log(20.0), 0.5, P)  # background (ambient) level
    eff = np.zeros((n_anchors, P))
    for j in range(P):
        size = rng.uniform(1.5, 3.0)
        if j < K:
            eff[j, j] = size
        else:
            eff[:K, j] = np.where(coarse_of == (j - K) % C, size, 0.0)
    if trajectory:  # the branch point anchor mixes like the RNA does
        eff[K] = 0.5 * eff[0] + 0.25 * eff[1] + 0.25 * eff[2]
    batch_scale = rng.normal(0.0, 0.2, B)
    log_mu = (base[None, :] + eff[anchor_a] * (1 - weight[:, None]) + eff[anchor_b] * weight[:, None]
              + batch_scale[batch_idx][:, None] + rng.normal(0.0, 0.2, anchor_a.size)[:, None])
    mu = np.exp(log_mu)
    theta = 10.0
    counts = rng.poisson(rng.gamma(theta, mu / theta)).astype(np.float32)
    return pd.DataFrame(counts, index=obs_names, columns=[f"protein_{j}" for j in range(P)])


def _de_table(log_rate: np.ndarray, types: Sequence[str], genes: Sequence[str]) -> pd.DataFrame:
    """Tidy ground-truth DE table (see :func:`simulate`)."""
    K = len(types)
    genes = np.asarray(genes, dtype=object)
    frames = []

    def add(g1, g2, lfc):
        hit = np.abs(lfc) > 1e-6
        frames.append(pd.DataFrame({"group1": g1, "group2": g2, "gene": genes[hit],
                                    "log2_fold_change": lfc[hit]}))

    for a in range(K):
        for b in range(a + 1, K):
            add(types[a], types[b], (log_rate[a] - log_rate[b]) / _LN2)
    for a in range(K):
        if K == 1:
            break
        rest = np.delete(log_rate, a, axis=0)
        rest_mean = np.log(np.exp(rest).mean(axis=0))
        add(types[a], "rest", (log_rate[a] - rest_mean) / _LN2)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["group1", "group2", "gene", "log2_fold_change"])
    for c in ("group1", "group2", "gene"):
        table[c] = table[c].astype(str)
    return table
