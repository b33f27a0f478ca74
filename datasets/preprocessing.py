"""Preprocessing as in the scANVI paper (Xu et al., Online Methods) plus two common extras.

Paper recipes:

- gene selection, "Datasets": per dataset, the ``g = 1,000`` genes of highest dispersion
  (variance-to-mean ratio, computed "using Seurat", i.e. Seurat v2 ``FindVariableGenes``:
  log VMR of the de-logged normalised data, z-scored within 20 bins of mean expression),
  union of these lists, on the genes shared by all datasets:
  :func:`select_genes_by_dispersion`, :func:`intersect_genes`, :func:`concat_datasets`;
- "Normalization of SmartSeq2 data": read counts divided by the gene's relative transcript
  length, integer part kept: :func:`smartseq2_length_normalize`;
- "Normalization of CITE-seq data": a two-component Gaussian mixture per protein,
  ``x -> (x - (mu1 + mu2) / 2)+``: :func:`normalize_protein_gmm`;
- library size (scVI's ``l`` prior uses the per-batch mean and variance of the log library):
  :func:`library_size`, :func:`log_library_prior`;
- "Signature calculus": ``log(1 + 1e4 x)`` of the UMI fractions: :func:`log_normalize`.

Extras: the Seurat v3 variance-stabilising HVG selection (:func:`select_hvg_seurat_v3`;
FINDINGS.md: it helps simple baselines a lot) and Seurat's per-cell CLR for ADT counts
(:func:`normalize_protein_clr`; Stoeckius et al. 2017).

Functions take an AnnData or a count matrix (dense or scipy.sparse, cells x genes) and
never modify their input.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Optional, Union

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .contract import BATCH_KEY, DataContractError

__all__ = [
    "library_size",
    "log_library_prior",
    "normalize_total",
    "log_normalize",
    "dispersion_table",
    "select_genes_by_dispersion",
    "hvg_seurat_v3_table",
    "select_hvg_seurat_v3",
    "intersect_genes",
    "concat_datasets",
    "smartseq2_length_normalize",
    "normalize_protein_clr",
    "normalize_protein_gmm",
]

Matrix = Union[np.ndarray, sp.spmatrix]


def _matrix(x) -> Matrix:
    """The count matrix of an AnnData, or the matrix itself."""
    X = x.X if isinstance(x, AnnData) else x
    if sp.issparse(X):
        return X.tocsr()
    return np.asarray(X)


# -- library size ------------------------------------------------------------------------

def library_size(x) -> np.ndarray:
    """Total counts per cell (float64, shape ``(n_cells,)``)."""
    return np.asarray(_matrix(x).sum(axis=1), dtype=np.float64).ravel()


def log_library_prior(x, batch: Optional[Sequence] = None) -> pd.DataFrame:
    """Per-batch mean and variance of the log library size.

    scVI (paper Methods, "scVI generative model") puts a log-normal prior on the library
    size factor with these empirical moments for each batch. Returns a DataFrame indexed by
    batch with columns ``mean`` and ``var`` (population variance). ``batch`` defaults to
    ``obs["batch"]`` of an AnnData, else one batch.
    """
    lib = library_size(x)
    if np.any(lib <= 0):
        raise DataContractError(f"X: {int((lib <= 0).sum())} cells with zero counts; the log "
                                "library size is undefined: filter empty cells first")
    if batch is None:
        batch = x.obs[BATCH_KEY].to_numpy() if isinstance(x, AnnData) else np.zeros(lib.size)
    log_lib = pd.Series(np.log(lib)).groupby(np.asarray(batch), sort=True)
    return pd.DataFrame({"mean": log_lib.mean(), "var": log_lib.var(ddof=0)})


def normalize_total(x, target_sum: float = 1e4) -> Matrix:
    """Scale every cell to ``target_sum`` total counts (cells with no counts stay zero).

    Returns CSR float32 for sparse input, float32 ndarray otherwise.
    """
    X = _matrix(x)
    lib = library_size(X)
    scale = np.divide(target_sum, lib, out=np.zeros_like(lib), where=lib > 0)
    if sp.issparse(X):
        return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ X.astype(np.float32))
    return (X * scale[:, None]).astype(np.float32)


def log_normalize(x, target_sum: float = 1e4) -> Matrix:
    """``log(1 + target_sum * x / library)``: Seurat's LogNormalize (paper, "Signature calculus")."""
    Y = normalize_total(x, target_sum)
    if sp.issparse(Y):
        Y = Y.copy()
        np.log1p(Y.data, out=Y.data)
        return Y
    return np.log1p(Y)


def _mean_var(X: Matrix, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and variance without densifying a sparse matrix."""
    n = X.shape[0]
    if sp.issparse(X):
        mean = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
        sq = np.asarray(X.multiply(X).mean(axis=0), dtype=np.float64).ravel()
    else:
        X = np.asarray(X, dtype=np.float64)
        mean, sq = X.mean(axis=0), (X * X).mean(axis=0)
    var = (sq - mean**2) * (n / max(n - ddof, 1))
    return mean, np.maximum(var, 0.0)


# -- gene selection: the paper's (Seurat v2 dispersion) ------------------------------------

def dispersion_table(x, *, n_bins: int = 20, target_sum: float = 1e4) -> pd.DataFrame:
    """Seurat v2 ``FindVariableGenes`` statistics of one dataset (paper, "Datasets").

    On ``log_normalize``-d data: ``mean = log1p(mean(expm1(y)))`` (ExpMean),
    ``dispersion = log(var(expm1(y)) / mean(expm1(y)))`` (LogVMR, variance with ddof 1),
    ``dispersion_norm`` = dispersion z-scored within ``n_bins`` equal-width bins of
    ``mean`` (as Seurat; a bin holding a single gene gets 1, as scanpy's ``flavor="seurat"``).
    Genes with zero mean or variance get NaN. Index = gene names (or positions).
    """
    X = _matrix(x)
    index = x.var_names if isinstance(x, AnnData) else pd.RangeIndex(X.shape[1])
    # expm1(log1p(normalised)) is the normalised data itself
    norm = normalize_total(X, target_sum)
    mean, var = _mean_var(norm, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        disp = np.where((mean > 0) & (var > 0), np.log(var / np.where(mean > 0, mean, 1)), np.nan)
    log_mean = np.log1p(mean)
    table = pd.DataFrame({"mean": log_mean, "dispersion": disp}, index=index)
    table["bin"] = pd.cut(table["mean"], bins=n_bins)
    grouped = table.groupby("bin", observed=True)["dispersion"]
    bin_mean = grouped.transform("mean")
    bin_std = grouped.transform(lambda s: s.std(ddof=1))
    single = grouped.transform("count") == 1
    table["dispersion_norm"] = np.where(single, 1.0, (table["dispersion"] - bin_mean) / bin_std)
    table.loc[table["dispersion"].isna(), "dispersion_norm"] = np.nan
    return table.drop(columns="bin")


def _top_genes(score: pd.Series, n_top: int) -> pd.Index:
    """Names of the ``n_top`` highest scores (NaN last; ties keep gene order)."""
    order = np.argsort(-score.fillna(-np.inf).to_numpy(), kind="stable")
    keep = order[: min(n_top, int(score.notna().sum()))]
    return score.index[np.sort(keep)]


def select_genes_by_dispersion(
    adatas_or_adata,
    n_top: int = 1000,
    batch_key: Optional[str] = BATCH_KEY,
    *,
    normalized: bool = True,
    n_bins: int = 20,
) -> list:
    """The paper's gene selection: top ``n_top`` genes by dispersion per dataset, then union.

    ``adatas_or_adata`` is a list/dict of AnnData (one per dataset; restricted first to the
    genes all of them share, :func:`intersect_genes`) or one AnnData split by
    ``obs[batch_key]`` (``batch_key=None``: the whole AnnData is one dataset).
    ``normalized`` ranks by the binned z-score (Seurat's default), else by raw log VMR.
    Returns gene names in the order of the (first) dataset's ``var_names``.
    """
    parts = _datasets(adatas_or_adata, batch_key)
    genes = pd.Index(intersect_genes([p for p in parts]))
    column = "dispersion_norm" if normalized else "dispersion"
    chosen = set()
    for part in parts:
        table = dispersion_table(part[:, genes], n_bins=n_bins)
        chosen.update(_top_genes(table[column], n_top))
    return [g for g in genes if g in chosen]


def _datasets(adatas_or_adata, batch_key) -> list:
    if isinstance(adatas_or_adata, AnnData):
        a = adatas_or_adata
        if batch_key is None:
            return [a]
        if batch_key not in a.obs:
            raise DataContractError(f"obs['{batch_key}']: missing; pass batch_key=None to treat "
                                    "the AnnData as one dataset")
        b = a.obs[batch_key].astype(str).to_numpy()
        return [a[b == v] for v in pd.unique(b)]
    if isinstance(adatas_or_adata, Mapping):
        adatas_or_adata = list(adatas_or_adata.values())
    parts = list(adatas_or_adata)
    if not parts or not all(isinstance(p, AnnData) for p in parts):
        raise TypeError("expected an AnnData or a non-empty list/dict of AnnData")
    return parts


# -- gene selection: Seurat v3 variance-stabilising transformation -------------------------

def hvg_seurat_v3_table(x, batch: Optional[Sequence] = None, *, n_top: int = 2000,
                        span: float = 0.3) -> pd.DataFrame:
    """Seurat v3 ``FindVariableFeatures(selection.method="vst")`` on raw counts.

    Per batch (Stuart et al. 2019): fit ``log10(var) ~ log10(mean)`` by loess (degree 2,
    ``span``; scikit-misc's loess, the one R uses), standardise each count by the fitted
    SD, ``z = (x - mean) / sd_fit``, clip ``z`` at ``sqrt(n_cells)``, and take the variance
    of ``z``. Across batches genes are ranked by the median of their within-batch ranks
    among the top ``n_top`` (Seurat's ``SelectIntegrationFeatures``), ties broken by the
    number of batches where they are in the top. Columns: ``variances_norm`` (mean across
    batches), ``rank`` (median rank, NaN if never in a top list), ``n_batches``.
    """
    from skmisc.loess import loess  # the loess of R's stats, as Seurat

    X = _matrix(x)
    index = x.var_names if isinstance(x, AnnData) else pd.RangeIndex(X.shape[1])
    if batch is None:
        batch = np.zeros(X.shape[0], dtype=int)
    batch = np.asarray(batch)
    norm_vars = []
    for b in pd.unique(batch):
        Xb = X[batch == b]
        mean, var = _mean_var(Xb, ddof=1)
        ok = var > 0
        fitted = np.zeros_like(mean)
        if ok.sum() < 4:
            raise ValueError(f"batch {b!r}: fewer than 4 variable genes, cannot fit the trend")
        model = loess(np.log10(mean[ok]), np.log10(var[ok]), span=span, degree=2)
        model.fit()
        fitted[ok] = model.outputs.fitted_values
        sd = np.sqrt(10.0**fitted)
        nv = _clipped_standardized_variance(Xb, mean, sd, np.sqrt(Xb.shape[0]))
        nv[~ok] = 0.0
        norm_vars.append(nv)
    norm_vars = np.vstack(norm_vars)
    ranks = np.argsort(np.argsort(-norm_vars, axis=1, kind="stable"), axis=1).astype(float)
    in_top = ranks < n_top
    ranks[~in_top] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # never-top genes: all-NaN -> NaN median
        median_rank = np.nanmedian(ranks, axis=0)
    return pd.DataFrame({"variances_norm": norm_vars.mean(axis=0), "rank": median_rank,
                         "n_batches": in_top.sum(axis=0)}, index=index)


def _clipped_standardized_variance(X: Matrix, mean: np.ndarray, sd: np.ndarray,
                                   clip: float) -> np.ndarray:
    """Variance (ddof 1) of ``min((x - mean) / sd, clip)`` per gene, zeros included.

    Works on the non-zeros only: zeros contribute ``(0 - mean) / sd`` each, and counts are
    clipped at ``mean + clip * sd`` before standardising (the same thing).
    """
    n = X.shape[0]
    cap = mean + clip * sd
    if sp.issparse(X):
        X = sp.csc_matrix(X)
        vals = np.minimum(X.data.astype(np.float64), np.repeat(cap, np.diff(X.indptr)))
        s1 = np.add.reduceat(vals, X.indptr[:-1]) if vals.size else np.zeros(X.shape[1])
        s2 = np.add.reduceat(vals**2, X.indptr[:-1]) if vals.size else np.zeros(X.shape[1])
        empty = np.diff(X.indptr) == 0
        s1[empty] = 0.0  # reduceat returns the next value for empty segments
        s2[empty] = 0.0
    else:
        C = np.minimum(np.asarray(X, dtype=np.float64), cap[None, :])
        s1, s2 = C.sum(axis=0), (C**2).sum(axis=0)
    # sum over cells of (c - mean)^2 with c the clipped count (zeros give mean^2 each)
    ss = s2 - 2 * mean * s1 + n * mean**2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, ss / ((n - 1) * sd**2), 0.0)


def select_hvg_seurat_v3(x, n_top: int = 2000, batch_key: Optional[str] = None, *,
                         span: float = 0.3) -> list:
    """Names of the ``n_top`` Seurat-v3 highly variable genes (see :func:`hvg_seurat_v3_table`).

    ``batch_key`` (AnnData input) ranks within each batch and combines the ranks.
    Returned in ``var_names`` order.
    """
    batch = None
    if batch_key is not None:
        if not isinstance(x, AnnData) or batch_key not in x.obs:
            raise DataContractError(f"obs['{batch_key}']: missing; pass an AnnData with that "
                                    "column or batch_key=None")
        batch = x.obs[batch_key].astype(str).to_numpy()
    table = hvg_seurat_v3_table(x, batch, n_top=n_top, span=span)
    order = table.sort_values(["rank", "n_batches"], ascending=[True, False],
                              na_position="last", kind="stable").index
    chosen = set(order[:n_top])
    return [g for g in table.index if g in chosen]


# -- combining datasets -----------------------------------------------------------------

def intersect_genes(adatas) -> list:
    """Gene names present in every AnnData, in the order of the first (paper, "Datasets")."""
    parts = _datasets(adatas, None)
    common = set(parts[0].var_names)
    for a in parts[1:]:
        common &= set(a.var_names)
    genes = [g for g in parts[0].var_names if g in common]
    if not genes:
        raise DataContractError("var_names: the datasets share no gene name; map them to one "
                                "naming scheme (symbols or Ensembl ids) first")
    return genes


def concat_datasets(adatas: Mapping, genes: Optional[Sequence] = None) -> AnnData:
    """Stack datasets on their shared genes; ``obs["dataset"]`` = dict key.

    ``obs["batch"]`` becomes the key for a single-batch dataset and ``"key:batch"``
    otherwise, so batches stay distinct across datasets. ``genes`` restricts (and orders)
    the genes, default :func:`intersect_genes`. Obs columns are kept where shared;
    ``obs_names`` are prefixed with the key when they collide.
    """
    import anndata

    if not isinstance(adatas, Mapping) or not adatas:
        raise TypeError("concat_datasets expects a non-empty dict {dataset name: AnnData}")
    genes = list(genes) if genes is not None else intersect_genes(adatas)
    parts = {}
    for key, a in adatas.items():
        a = a[:, genes].copy()
        b = a.obs[BATCH_KEY].astype(str) if BATCH_KEY in a.obs else pd.Series(key, index=a.obs_names)
        a.obs[BATCH_KEY] = key if b.nunique() <= 1 else (str(key) + ":" + b)
        a.obs["dataset"] = key
        parts[key] = a
    all_names = pd.Index(np.concatenate([a.obs_names.to_numpy() for a in parts.values()]))
    out = anndata.concat(parts, join="inner", merge="same", uns_merge="same",
                         index_unique="-" if not all_names.is_unique else None)
    for c in (BATCH_KEY, "dataset"):
        out.obs[c] = pd.Categorical(out.obs[c].astype(str))
    return out


# -- normalisations the paper applies before scVI ------------------------------------------

def smartseq2_length_normalize(x, gene_length: Union[pd.Series, Sequence[float]]) -> sp.csr_matrix:
    """Paper, "Normalization of SmartSeq2 data": ``floor(x / (length_g / mean(length)))``.

    Read counts are divided by the relative transcript length of each gene (its average
    transcript length over the average over all genes) and the integer part is kept, so the
    result stays count-like for scVI and is not normalised by cell size. ``gene_length`` is
    aligned by gene name when it is a Series and the input an AnnData, else by position.
    """
    X = sp.csr_matrix(_matrix(x), dtype=np.float64)
    if isinstance(gene_length, pd.Series) and isinstance(x, AnnData):
        missing = x.var_names.difference(gene_length.index)
        if len(missing):
            raise DataContractError(f"gene_length: no length for {len(missing)} genes (e.g. "
                                    f"{list(missing[:3])}); give a length for every gene or "
                                    "subset the genes first")
        gene_length = gene_length.loc[x.var_names]
    length = np.asarray(gene_length, dtype=np.float64).ravel()
    if length.size != X.shape[1]:
        raise DataContractError(f"gene_length: {length.size} values for {X.shape[1]} genes")
    if not np.all(np.isfinite(length)) or np.any(length <= 0):
        raise DataContractError("gene_length: lengths must be positive and finite")
    relative = length / length.mean()
    Y = X @ sp.diags(1.0 / relative)
    Y = sp.csr_matrix(Y)
    np.floor(Y.data, out=Y.data)
    Y.eliminate_zeros()
    return Y.astype(np.float32)


def _protein_frame(protein) -> pd.DataFrame:
    if isinstance(protein, AnnData):
        protein = protein.obsm["protein"]
    if isinstance(protein, pd.DataFrame):
        return protein.astype(np.float64)
    return pd.DataFrame(np.asarray(protein, dtype=np.float64))


def normalize_protein_clr(protein, axis: str = "cell") -> pd.DataFrame:
    """Centred log-ratio of ADT counts, as Seurat's ``NormalizeData(method="CLR")``.

    ``log1p(x / exp(mean(log1p(x))))`` within each cell (``axis="cell"``, Seurat's
    ``margin = 2``, Stoeckius et al. 2017) or within each protein (``axis="protein"``).
    Accepts an AnnData (its ``obsm["protein"]``), a DataFrame or an array.
    """
    P = _protein_frame(protein)
    if (P.to_numpy() < 0).any():
        raise DataContractError("protein: CLR needs non-negative ADT counts; these look already "
                                "normalised")
    ax = {"cell": 1, "protein": 0}.get(axis)
    if ax is None:
        raise ValueError(f"axis must be 'cell' or 'protein', got {axis!r}")
    geo = np.exp(np.log1p(P).mean(axis=ax))
    return np.log1p(P.div(geo, axis=0 if ax == 1 else 1))


def normalize_protein_gmm(protein, seed: int = 0) -> pd.DataFrame:
    """Paper, "Normalization of CITE-seq data": ``x -> max(x - (mu1 + mu2) / 2, 0)``.

    Per protein, a two-component Gaussian mixture (scikit-learn, full EM from a k-means
    start seeded by ``seed``) is fitted to its values; ``mu1, mu2`` are the component means,
    so the midpoint separates background from positive cells and the background is zeroed.
    """
    from sklearn.mixture import GaussianMixture

    P = _protein_frame(protein)
    out = P.copy()
    for c in P.columns:
        v = P[c].to_numpy()[:, None]
        if np.unique(v).size < 2:
            out[c] = 0.0  # a constant protein carries no signal
            continue
        gmm = GaussianMixture(n_components=2, random_state=seed).fit(v)
        out[c] = np.maximum(v[:, 0] - gmm.means_.ravel().mean(), 0.0)
    return out
