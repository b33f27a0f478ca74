"""scmap: projection of query cells onto a labelled reference (scmap-cluster and scmap-cell).

A Python re-implementation of scmap 1.9.3 (hemberg-lab/scmap), following Kiselev, Yiu &
Hemberg 2018 ("scmap: projection of single-cell RNA-seq data across data sets", Nat. Methods
15:359). The scANVI paper (Xu et al., Methods, "Algorithms for benchmarking") uses
scmap-cluster with its default 500 genes as an annotation baseline.

Conventions: matrices have **cells in rows, genes in columns** (scipy sparse or dense), gene
names are given separately; indices are 0-based; "unassigned" is the string scmap uses (the
adapter turns it into NaN).

* :func:`select_features` (paper "Feature selection"): genes whose dropout rate is high for
  their mean expression, i.e. the largest residuals of ``lm(log2(% dropouts) ~ mean log
  expression)``, genes with 0% or 100% dropouts excluded.
* :func:`index_cluster` / :func:`scmap_cluster` (paper "scmap-cluster"): each reference cluster
  is summarised by its per-gene median; a query cell is compared to every centroid with cosine,
  Pearson and Spearman similarity; the label is kept when at least two of the three argmaxes
  agree and the best agreeing similarity reaches the threshold (0.7), else "unassigned".
* :func:`index_cell` / :func:`scmap_cell` (paper "scmap-cell"): product quantisation. The
  L2-normalised reference cells are cut into ``M`` chunks of genes, each chunk is k-means
  clustered (``k = floor(sqrt(n_cells))``) and every cell is stored as its ``M`` sub-cluster
  ids; a query's approximate cosine to a reference cell is the sum of its dot products with the
  cell's (normalised) sub-centroids, divided by ``sqrt(M) |query|``.
* :func:`scmap_cell_to_cluster`: a query takes the label of its first ``w`` neighbours when
  they agree and the best similarity exceeds 0.5.

Reproducibility: selected genes, the cluster index, scmap-cluster labels/similarities and the
scmap-cell search given an index reproduce R exactly (tests/test_scmap.py). The index built by
:func:`index_cell` cannot be bit-identical to R's: R's ``kmeans`` draws its initial centres with
R's Mersenne-Twister and runs Hartigan-Wong, we draw with numpy's seeded generator and run
Lloyd (scikit-learn). R's ``max.col`` breaks near-ties (within 1e-5 relative) at random; we take
the first maximum.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import rankdata

__all__ = [
    "UNASSIGNED",
    "log2_cpm",
    "r_sort_key",
    "select_features",
    "FeatureSelection",
    "index_cluster",
    "scmap_cluster",
    "ScmapClusterResult",
    "index_cell",
    "CellIndex",
    "scmap_cell",
    "ScmapCellResult",
    "scmap_cell_to_cluster",
]

UNASSIGNED = "unassigned"
#: similarities held at once in scmap_cell (x 8 bytes): ~400 MB
_SIM_BLOCK_ENTRIES = 50_000_000


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def r_sort_key(name: str) -> tuple:
    """Sort key close to R's ICU "root" collation: case-insensitive first, then by case.

    R (with ICU) sorts ``C1orf162`` before ``C1QBP``; Python's code-point order does not. Only
    the *order* of index rows/columns depends on it, never a value.
    """
    return (name.casefold(), name.swapcase())


def _dense(x) -> np.ndarray:
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)


def log2_cpm(counts, library_size: Optional[np.ndarray] = None):
    """``log2(counts / library_size * 1e6 + 1)`` per cell (the logcounts scmap's vignette uses).

    ``library_size`` defaults to the row sums of ``counts``; pass the totals over *all* genes
    when ``counts`` was already restricted to a gene subset. Sparse in, sparse out (float64).
    """
    lib = np.asarray(counts.sum(axis=1)).ravel().astype(np.float64) if library_size is None \
        else np.asarray(library_size, dtype=np.float64)
    if np.any(lib <= 0):
        raise ValueError("log2_cpm: some cells have library size 0; remove empty cells first")
    if sp.issparse(counts):
        out = sp.csr_matrix(counts, dtype=np.float64, copy=True)
        out.data = np.log2(out.data / np.repeat(lib, np.diff(out.indptr)) * 1e6 + 1)
        return out
    return np.log2(np.asarray(counts, dtype=np.float64) / lib[:, None] * 1e6 + 1)


def _gene_index(genes: Sequence[str], what: str) -> pd.Index:
    idx = pd.Index(np.asarray(genes, dtype=str))
    if idx.has_duplicates:
        dup = idx[idx.duplicated()].unique()[:5].tolist()
        raise ValueError(f"{what}: gene names must be unique (duplicates: {dup}); make var_names unique")
    return idx


# --------------------------------------------------------------------------------------
# feature selection
# --------------------------------------------------------------------------------------
@dataclass
class FeatureSelection:
    """Per-gene outputs of :func:`select_features` (scmap's rowData columns)."""

    genes: np.ndarray
    selected: np.ndarray  # bool, scmap_features
    scores: np.ndarray  # lm residual, NaN for genes with 0% or 100% dropouts (scmap_scores)
    dropout_pct: np.ndarray
    mean_expression: np.ndarray

    @property
    def selected_genes(self) -> np.ndarray:
        return self.genes[self.selected]


def select_features(counts, logcounts, genes: Sequence[str], n_features: int = 500) -> FeatureSelection:
    """scmap ``selectFeatures``: top ``n_features`` residuals of log2(dropout%) ~ mean logcounts.

    ``counts`` (dropouts = cells with count 0) and ``logcounts`` are cells x genes of the
    reference. Genes with no or only dropouts are excluded from the fit. Ties keep gene order.
    """
    genes = np.asarray(_gene_index(genes, "select_features"))
    n_cells = counts.shape[0]
    if counts.shape != logcounts.shape or counts.shape[1] != genes.size:
        raise ValueError(f"select_features: counts {counts.shape}, logcounts {logcounts.shape} and "
                         f"{genes.size} gene names must agree (cells x genes)")
    if sp.issparse(counts):
        nonzero = np.asarray((counts != 0).sum(axis=0)).ravel()
    else:
        nonzero = np.count_nonzero(np.asarray(counts), axis=0)
    dropout = (n_cells - nonzero) / n_cells * 100
    mean_expr = np.asarray(logcounts.mean(axis=0)).ravel().astype(np.float64)
    usable = np.flatnonzero((dropout != 0) & (dropout != 100))
    if usable.size < 2:
        raise ValueError("select_features: fewer than 2 genes have dropout rates strictly between 0 and 100%")
    y = np.log2(dropout[usable])
    design = np.column_stack([np.ones(usable.size), mean_expr[usable]])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residuals = y - design @ coef
    top = np.argsort(-residuals, kind="stable")[:n_features]
    selected = np.zeros(genes.size, dtype=bool)
    selected[usable[top]] = True
    scores = np.full(genes.size, np.nan)
    scores[usable] = residuals
    return FeatureSelection(genes=genes, selected=selected, scores=scores, dropout_pct=dropout,
                            mean_expression=mean_expr)


# --------------------------------------------------------------------------------------
# scmap-cluster
# --------------------------------------------------------------------------------------
def index_cluster(logcounts, genes: Sequence[str], labels: Sequence, features: Sequence[str]) -> pd.DataFrame:
    """scmap ``indexCluster``: per-cluster median logcounts over the selected ``features``.

    Returns genes x clusters: rows in R's collation order (:func:`r_sort_key`), columns in
    order of first appearance among the reference cells (reshape2's factor levels); clusters
    whose medians are all zero are dropped (they cannot be matched by cosine).
    """
    gidx = _gene_index(genes, "index_cluster")
    labels = pd.Series(np.asarray(labels, dtype=object))
    if labels.isna().any():
        raise ValueError("index_cluster: reference labels contain NaN; pass labelled reference cells only")
    if len(labels) != logcounts.shape[0]:
        raise ValueError(f"index_cluster: {len(labels)} labels for {logcounts.shape[0]} cells")
    pos = gidx.get_indexer(list(features))
    if np.any(pos < 0):
        raise ValueError("index_cluster: some features are not among the gene names")
    x = _dense(logcounts[:, pos])
    labels = labels.astype(str).to_numpy()
    clusters = list(pd.unique(labels))
    medians = np.column_stack([np.median(x[labels == c], axis=0) for c in clusters])
    index = pd.DataFrame(medians, index=pd.Index(list(features), name="gene"), columns=clusters)
    index = index.loc[sorted(index.index, key=r_sort_key)]
    index = index.loc[:, index.sum(axis=0) > 0]
    if index.shape[1] == 0:
        raise ValueError("index_cluster: every cluster median is 0 on the selected features; select more features")
    return index


@dataclass
class ScmapClusterResult:
    """``labels`` (str, "unassigned" allowed), ``siml`` (NaN where undefined) and, per metric
    (cosine, pearson, spearman), the argmax cluster and its similarity."""

    labels: np.ndarray
    siml: np.ndarray
    per_metric: pd.DataFrame


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of rows of ``a`` (queries) with rows of ``b`` (centroids)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a @ b.T) / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _cosine(a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True))


def _first_argmax(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax and max per row; -1 / NaN where a row has any NaN (R's max.col gives NA)."""
    bad = np.isnan(sim).any(axis=1)
    arg = np.where(bad, -1, np.argmax(np.where(np.isnan(sim), -np.inf, sim), axis=1))
    mx = np.where(bad, np.nan, np.max(np.where(np.isnan(sim), -np.inf, sim), axis=1))
    return arg, mx


def scmap_cluster(query_logcounts, query_genes: Sequence[str], index: pd.DataFrame,
                  threshold: float = 0.7) -> ScmapClusterResult:
    """scmap ``scmapCluster`` with one reference index.

    Similarities are computed over the index genes present in the query. Label rule: all three
    argmaxes agree -> that cluster, siml = max of the three maxima; exactly two agree -> their
    cluster, siml = max of those two; all differ or any similarity undefined -> "unassigned",
    siml NaN. A label with siml < ``threshold`` becomes "unassigned" but keeps its siml.
    """
    qidx = _gene_index(query_genes, "scmap_cluster")
    common = [g for g in index.index if g in qidx]
    if len(common) < 10:
        raise ValueError(f"scmap_cluster: only {len(common)} index genes are in the query (need >= 10); "
                         "check that reference and query use the same gene symbols")
    ref = index.loc[common].to_numpy(dtype=np.float64).T  # clusters x genes
    q = _dense(query_logcounts[:, qidx.get_indexer(common)])
    sims = [_cosine(q, ref), _pearson(q, ref),
            _pearson(rankdata(q, axis=1), rankdata(ref, axis=1))]
    args, maxs = zip(*(_first_argmax(s) for s in sims))
    args, maxs = np.column_stack(args), np.column_stack(maxs)
    names = np.asarray(index.columns, dtype=object)

    labels = np.full(q.shape[0], UNASSIGNED, dtype=object)
    siml = np.full(q.shape[0], np.nan)
    valid = (args >= 0).all(axis=1)
    a, b, c = args.T
    all3 = valid & (a == b) & (b == c)
    labels[all3] = names[a[all3]]
    siml[all3] = maxs[all3].max(axis=1)
    for i, j in ((0, 1), (0, 2), (1, 2)):  # exactly two agree (the third differs)
        two = valid & ~all3 & (args[:, i] == args[:, j])
        labels[two] = names[args[two, i]]
        siml[two] = np.maximum(maxs[two, i], maxs[two, j])
    labels[~np.isnan(siml) & (siml < threshold)] = UNASSIGNED

    metric_names = ("cosine", "pearson", "spearman")
    per_metric = pd.DataFrame(
        {**{f"{m}_label": np.where(args[:, i] >= 0, names[np.maximum(args[:, i], 0)], None)
            for i, m in enumerate(metric_names)},
         **{f"{m}_siml": maxs[:, i] for i, m in enumerate(metric_names)}})
    return ScmapClusterResult(labels=labels, siml=siml, per_metric=per_metric)


# --------------------------------------------------------------------------------------
# scmap-cell
# --------------------------------------------------------------------------------------
@dataclass
class CellIndex:
    """Product-quantisation index (scmap ``metadata(sce)$scmap_cell_index``).

    ``subcentroids[m]``: DataFrame genes-of-chunk x k, L2-normalised centroids;
    ``subclusters``: (n_chunks, n_ref_cells) 0-based sub-cluster of each cell in each chunk.
    """

    subcentroids: list
    subclusters: np.ndarray

    @property
    def n_chunks(self) -> int:
        return len(self.subcentroids)


def _l2_normalize_columns(x: np.ndarray) -> np.ndarray:
    """armadillo ``normalise``: columns to unit L2 norm, all-zero columns left as zeros."""
    norm = np.linalg.norm(x, axis=0)
    return x / np.where(norm > 0, norm, 1.0)


def _kmeans_chunk(x: np.ndarray, k: int, rng: np.random.Generator, iter_max: int):
    """k-means of cells (rows) with ``k`` distinct random cells as initial centres.

    Returns (labels, centres) or None where R's ``kmeans`` errors (fewer distinct cells than k).
    """
    from sklearn.cluster import KMeans

    distinct = np.unique(x, axis=0)
    if distinct.shape[0] < k:
        return None
    init = distinct[rng.choice(distinct.shape[0], size=k, replace=False)]
    km = KMeans(n_clusters=k, init=init, n_init=1, max_iter=iter_max, algorithm="lloyd").fit(x)
    return km.labels_, km.cluster_centers_


def index_cell(logcounts, genes: Sequence[str], features: Sequence[str], M: Optional[int] = None,
               k: Optional[int] = None, seed: int = 0, iter_max: int = 50) -> CellIndex:
    """scmap ``indexCell``: product-quantisation index of the reference cells.

    ``features`` (in reference gene order) are cut into ``M`` consecutive chunks of
    ``floor(n_features / M)`` genes (default ``M = n_features / 10``, or 100 above 1000
    features); each chunk of the per-cell L2-normalised data is k-means clustered
    (``k = floor(sqrt(n_cells))`` by default) and its centroids re-normalised. Chunks where
    k-means cannot run (fewer distinct cells than ``k``) are dropped, as in scmap.
    """
    gidx = _gene_index(genes, "index_cell")
    features = list(features)
    pos = gidx.get_indexer(features)
    if np.any(pos < 0):
        raise ValueError("index_cell: some features are not among the gene names")
    n_features, n_cells = len(features), logcounts.shape[0]
    if M is None:
        M = 100 if n_features > 1000 else n_features / 10
    M = int(M)
    k = int(np.floor(np.sqrt(n_cells))) if k is None else int(k)
    if M < 1 or n_features < M:
        raise ValueError(f"index_cell: M must be in 1..{n_features} (number of features), got {M}")
    if not 1 <= k <= n_cells:
        raise ValueError(f"index_cell: k must be in 1..{n_cells} (number of reference cells), got {k}")
    # genes x cells, each cell scaled to unit length so k-means approximates cosine
    norm = _l2_normalize_columns(_dense(logcounts[:, pos]).T)
    chunksize = n_features // M
    rng = np.random.default_rng(seed)
    subcentroids, subclusters = [], []
    for m in range(M):
        rows = slice(m * chunksize, (m + 1) * chunksize)
        out = _kmeans_chunk(norm[rows].T, k, rng, iter_max)
        if out is None:
            continue
        labels, centres = out
        subclusters.append(labels)
        subcentroids.append(pd.DataFrame(_l2_normalize_columns(centres.T), index=features[rows],
                                         columns=[f"centroid{j + 1}" for j in range(k)]))
    if not subcentroids:
        raise ValueError("index_cell: k-means failed in every chunk (fewer distinct cells than k); lower k")
    return CellIndex(subcentroids=subcentroids, subclusters=np.vstack(subclusters))


@dataclass
class ScmapCellResult:
    """``cells`` (n_query x w, 0-based reference rows) and ``similarities`` in scmap's buffer
    order (not sorted: see :func:`scmap_cell`)."""

    cells: np.ndarray
    similarities: np.ndarray


def _approx_cosine(query_logcounts, query_genes: Sequence[str], index: CellIndex,
                   n_query_total: Optional[int] = None) -> np.ndarray:
    """(n_query x n_ref) approximate cosine: sum over chunks of <query chunk, sub-centroid of
    the reference cell> / (sqrt(M) |query over the index genes|); no division for zero queries."""
    qidx = _gene_index(query_genes, "scmap_cell")
    n_query = query_logcounts.shape[0]
    n_ref = index.subclusters.shape[1]
    wanted = [g for c in index.subcentroids for g in c.index if g in qidx]
    col = {g: i for i, g in enumerate(dict.fromkeys(wanted))}
    q_all = _dense(query_logcounts[:, qidx.get_indexer(list(col))])  # query over the index genes
    dots, sq_norm = [], np.zeros(n_query)
    for cent in index.subcentroids:
        common = [g for g in cent.index if g in col]
        if not common:
            # scmap quirk: a chunk without common genes contributes (n_query * k) to every
            # similarity and nothing to the query norm
            dots.append(np.full((n_query, cent.shape[1]), float((n_query_total or n_query) * cent.shape[1])))
            continue
        q = q_all[:, [col[g] for g in common]]
        dots.append(q @ cent.loc[common].to_numpy(dtype=np.float64))  # n_query x k
        sq_norm += np.einsum("ij,ij->i", q, q)
    # sum over chunks of dots[m][:, subcluster of the reference cell in chunk m], as one
    # product with a one-hot (chunk, sub-cluster) x cell matrix; terms add up in chunk order
    offsets = np.cumsum([0] + [d.shape[1] for d in dots[:-1]])
    onehot = sp.csr_matrix(
        (np.ones(index.subclusters.size),
         (np.repeat(np.arange(n_ref), index.n_chunks), (index.subclusters + offsets[:, None]).T.ravel())),
        shape=(n_ref, int(offsets[-1] + dots[-1].shape[1])))
    total = np.asarray(onehot @ np.hstack(dots).T).T
    scale = np.where(sq_norm > 0, np.sqrt(index.n_chunks) * np.sqrt(sq_norm), 1.0)
    return total / scale[:, None]


def scmap_cell(query_logcounts, query_genes: Sequence[str], index: CellIndex, w: int = 10) -> ScmapCellResult:
    """scmap ``scmapCell``: the ``w`` most similar reference cells of each query cell.

    The ``w`` found are the top ``w`` by approximate cosine, kept in scmap's buffer order: the
    buffer starts with reference cells 0..w-1, then each later cell that beats the buffer's
    minimum replaces the *first* minimal slot. scmapCell2Cluster reads the first slots of
    this buffer, so the order matters and is reproduced.
    """
    n_ref = index.subclusters.shape[1]
    if not 1 <= w <= n_ref:
        raise ValueError(f"scmap_cell: w must be in 1..{n_ref} (number of reference cells), got {w}")
    if sp.issparse(query_logcounts):
        query_logcounts = query_logcounts.tocsr()  # row blocks below
    n_query = query_logcounts.shape[0]
    cells = np.tile(np.arange(w), (n_query, 1))
    best = np.empty((n_query, w))
    block = max(1, _SIM_BLOCK_ENTRIES // n_ref)  # bound the n_query x n_ref similarity block
    for start in range(0, n_query, block):
        sim = _approx_cosine(query_logcounts[start:start + block], query_genes, index, n_query)
        cur_cells, cur_best = cells[start:start + block], sim[:, :w].copy()
        slot = np.argmin(cur_best, axis=1)  # first minimum, like Rcpp::which_min
        low = cur_best[np.arange(sim.shape[0]), slot]
        for r in range(w, n_ref):  # vectorised over queries, sequential over the reference
            hit = np.flatnonzero(sim[:, r] > low)
            if hit.size:
                cur_cells[hit, slot[hit]] = r
                cur_best[hit, slot[hit]] = sim[hit, r]
                slot[hit] = np.argmin(cur_best[hit], axis=1)
                low[hit] = cur_best[hit, slot[hit]]
        best[start:start + block] = cur_best
    return ScmapCellResult(cells=cells, similarities=best)


def scmap_cell_to_cluster(result: ScmapCellResult, ref_labels: Sequence, w: int = 3,
                          threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """scmap ``scmapCell2Cluster``: label of the first ``w`` buffer slots when they agree and the
    best similarity over all slots exceeds ``threshold``; else "unassigned" (siml NaN).

    Returns ``(labels, siml)``.
    """
    ref_labels = np.asarray(ref_labels, dtype=object)
    if not 1 <= w <= result.cells.shape[1]:
        raise ValueError(f"scmap_cell_to_cluster: w must be in 1..{result.cells.shape[1]}, got {w}")
    first = ref_labels[result.cells[:, :w]]
    agree = (first == first[:, :1]).all(axis=1)
    best = result.similarities.max(axis=1)
    ok = agree & (best > threshold)
    labels = np.where(ok, first[:, 0], UNASSIGNED).astype(object)
    return labels, np.where(ok, best, np.nan)
