"""The data contract: one AnnData per benchmark input (DESIGN.md section 1).

:func:`validate` is the single gate every loader, the simulator and every method input
goes through. It *converts* what has one obvious fix (dense or non-CSR ``X`` -> CSR
float32, string columns -> categorical, a hierarchy that can be read off the columns)
and *rejects* what does not, with a :class:`DataContractError` whose message names the
field and the fix. All violations found are reported together, one line each, so a
user fixes a file in one pass.

Contract (fields):

- ``X``: raw counts, non-negative integer values, ``scipy.sparse.csr_matrix`` float32.
- ``obs["batch"]``: categorical batch of origin, no missing values.
- ``obs["cell_type"]``: categorical label, NaN = unlabelled (never "nan"/"unknown").
- ``obs["cell_type_coarse"]`` + ``uns["hierarchy"]`` (fine -> coarse dict), optional.
- ``obs["pseudotime"]``: float, optional (NaN allowed for cells off the trajectory).
- ``obsm["protein"]``: ``pandas.DataFrame`` indexed like obs, protein-name columns, optional.
- ``var_names`` / ``obs_names`` unique, non-empty; ``var["gene_ids"]`` where known.
- ``uns["source"]``: provenance dict (name, url, sha256, citation, license), when present.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

__all__ = [
    "DataContractError",
    "validate",
    "attach_protein",
    "PLACEHOLDER_LABELS",
    "BATCH_KEY",
    "LABEL_KEY",
    "COARSE_KEY",
    "PSEUDOTIME_KEY",
    "PROTEIN_KEY",
]

BATCH_KEY = "batch"
LABEL_KEY = "cell_type"
COARSE_KEY = "cell_type_coarse"
PSEUDOTIME_KEY = "pseudotime"
PROTEIN_KEY = "protein"

#: strings that people use for "no label"; the contract wants NaN instead, so that
#: "unknown" is never mistaken for a real class by a classifier or a metric.
PLACEHOLDER_LABELS = ("nan", "NaN", "None", "", "unknown", "Unknown", "unassigned", "NA")

# float32 holds every integer exactly only up to 2**24
_FLOAT32_EXACT = 2**24

_SOURCE_KEYS = ("name", "url", "sha256", "citation", "license")


class DataContractError(ValueError):
    """An AnnData breaks the data contract. ``violations`` lists one message per problem."""

    def __init__(self, violations):
        if isinstance(violations, str):
            violations = [violations]
        self.violations = list(violations)
        head = "AnnData violates the data contract (DESIGN.md section 1):"
        super().__init__("\n".join([head] + [f"  - {v}" for v in self.violations]))


def validate(
    adata: AnnData,
    *,
    need_batches: int = 1,
    need_labels: bool = False,
    need_protein: bool = False,
    need_pseudotime: bool = False,
    need_hierarchy: bool = False,
    copy: bool = False,
) -> AnnData:
    """Check ``adata`` against the data contract, convert what is convertible, return it.

    Parameters
    ----------
    adata
        The AnnData to check.
    need_batches
        Minimum number of distinct ``obs["batch"]`` values the task needs (2 for harmonization).
    need_labels
        The task needs at least one labelled cell in ``obs["cell_type"]``.
    need_protein
        The task needs ``obsm["protein"]`` (CITE-seq scenarios).
    need_pseudotime
        The task needs a finite ``obs["pseudotime"]`` for at least one cell.
    need_hierarchy
        The task needs ``obs["cell_type_coarse"]`` and ``uns["hierarchy"]``.
    copy
        Work on a copy; otherwise conversions happen in place and ``adata`` itself is returned.

    Conversions (never errors): dense / COO / CSC / sparse-array ``X`` -> ``csr_matrix``
    float32 with summed duplicates and no explicit zeros; string/object/numeric
    ``batch``, ``cell_type`` and ``cell_type_coarse`` -> categorical; a missing
    ``cell_type`` column -> all-NaN categorical (unlabelled data) unless labels are needed;
    integer pseudotime -> float; ``uns["hierarchy"]`` derived from the two label columns
    (or ``cell_type_coarse`` from ``uns["hierarchy"]``) when only one is given.

    Raises
    ------
    DataContractError
        Listing every violation, each naming the field and the fix.
    """
    if not isinstance(adata, AnnData):
        raise DataContractError(f"expected an anndata.AnnData, got {type(adata).__name__}; "
                                "wrap your matrix with anndata.AnnData(X, obs=..., var=...)")
    if adata.isbacked:
        raise DataContractError("AnnData is backed on disk; load it into memory first "
                                "(anndata.read_h5ad(path) without backed=...)")
    if copy:
        adata = adata.copy()

    problems: list[str] = []
    problems += _check_names(adata.obs_names, "obs_names", "obs_names_make_unique()")
    problems += _check_names(adata.var_names, "var_names", "var_names_make_unique()")
    problems += _check_X(adata)
    problems += _check_batch(adata, need_batches)
    problems += _check_labels(adata, LABEL_KEY, required=need_labels)
    # the coarse column may be derived from uns["hierarchy"] below
    problems += _check_labels(adata, COARSE_KEY,
                              required=need_hierarchy and "hierarchy" not in adata.uns)
    problems += _check_hierarchy(adata, need_hierarchy)
    problems += _check_pseudotime(adata, need_pseudotime)
    problems += _check_protein(adata, need_protein)
    problems += _check_source(adata)
    if problems:
        raise DataContractError(problems)
    return adata


def attach_protein(adata: AnnData, protein: pd.DataFrame, *, key: str = PROTEIN_KEY) -> AnnData:
    """Store a protein/ADT table in ``adata.obsm[key]`` aligned to ``adata.obs_names``.

    The table is matched by its index (cell barcodes), not by position, because protein
    and RNA tables from different files rarely share an order. Every cell of ``adata``
    must be present in ``protein``; extra rows in ``protein`` are dropped.
    """
    if not isinstance(protein, pd.DataFrame):
        raise DataContractError(f"obsm['{key}']: expected a pandas.DataFrame indexed by cell "
                                f"name with protein-name columns, got {type(protein).__name__}")
    if not protein.index.is_unique:
        raise DataContractError(f"obsm['{key}']: the protein table index has duplicated cell "
                                "names; deduplicate it before attaching")
    missing = adata.obs_names.difference(protein.index)
    if len(missing):
        raise DataContractError(
            f"obsm['{key}']: protein table misaligned with obs: {len(missing)} of "
            f"{adata.n_obs} cells have no protein row (e.g. {list(missing[:3])}); "
            "subset the AnnData to cells with protein data or fix the barcodes")
    adata.obsm[key] = protein.loc[adata.obs_names].copy()
    return adata


# -- individual checks: each returns a list of messages (empty = fine) -------------------

def _check_names(names: pd.Index, field: str, fix: str) -> list[str]:
    out = []
    as_str = pd.Index(names).astype(str)
    blank = pd.isna(pd.Index(names)) | as_str.isin(["", "nan", "None"])
    if blank.any():
        out.append(f"{field}: {int(blank.sum())} missing/empty names (e.g. position "
                   f"{int(np.flatnonzero(blank)[0])}); give every entry a name")
    if not pd.Index(names).is_unique:
        dup = pd.Index(names)[pd.Index(names).duplicated()].unique()
        out.append(f"{field}: {len(dup)} duplicated names (e.g. {list(map(str, dup[:3]))}); "
                   f"call adata.{fix}")
    return out


def _check_X(adata: AnnData) -> list[str]:
    X = adata.X
    if X is None:
        return ["X: missing; store raw counts in adata.X"]
    if adata.n_obs == 0 or adata.n_vars == 0:
        return [f"X: empty matrix ({adata.n_obs} cells x {adata.n_vars} genes); "
                "load a dataset with at least one cell and one gene"]
    if not (sp.issparse(X) or isinstance(X, np.ndarray)):
        try:  # e.g. np.matrix, h5py views, dask would need .compute() first
            X = np.asarray(X)
        except Exception:  # noqa: BLE001 - report the type, whatever failed
            return [f"X: unsupported type {type(X).__name__}; use a numpy array or scipy.sparse matrix"]
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        return [f"X: dtype {X.dtype} is not numeric; store raw counts as numbers"]
    # sparse conversion first: the value checks then only look at stored entries
    X = sp.csr_matrix(X)
    X.sum_duplicates()
    X.eliminate_zeros()
    data = X.data
    out = []
    if data.size and np.issubdtype(data.dtype, np.floating):
        bad = ~np.isfinite(data)
        if bad.any():
            out.append(f"X: {int(bad.sum())} NaN/inf values; X must be raw counts "
                       "(replace missing measurements by 0 or drop those cells/genes)")
            data = data[~bad]
    if data.size and data.min() < 0:
        out.append(f"X: {int((data < 0).sum())} negative values (min {data.min():g}); X must be "
                   "raw counts, not centred/scaled data: use the raw counts (adata.raw or "
                   "a 'counts' layer)")
    if data.size and np.issubdtype(data.dtype, np.floating) and not np.all(data == np.round(data)):
        frac = float(np.mean(data != np.round(data)))
        out.append(f"X: non-integer values ({frac:.1%} of non-zeros); X must be raw counts, not "
                   "normalised or log data: use the raw counts (adata.raw or a 'counts' layer)")
    if X.nnz == 0 and not out:
        out.append("X: empty matrix (all counts are zero); load the raw counts")
    if out:
        return out
    if data.size and data.max() >= _FLOAT32_EXACT:
        X = X.astype(np.float64, copy=False)  # float32 would round these counts
    else:
        X = X.astype(np.float32, copy=False)
    adata.X = X
    return []


def _to_categorical(s: pd.Series) -> pd.Series:
    """Categorical with string categories, keeping real missing values as NaN."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        if all(isinstance(c, str) for c in s.cat.categories):
            return s
        s = s.astype(object)
    values = s.astype(str).where(s.notna(), np.nan)
    return pd.Series(pd.Categorical(values), index=s.index, name=s.name)


def _check_batch(adata: AnnData, need_batches: int) -> list[str]:
    if BATCH_KEY not in adata.obs:
        return [f"obs['{BATCH_KEY}']: missing; add it, e.g. adata.obs['{BATCH_KEY}'] = 'my_dataset' "
                "for a single batch"]
    s = adata.obs[BATCH_KEY]
    out = []
    if s.isna().any():
        out.append(f"obs['{BATCH_KEY}']: {int(s.isna().sum())} cells without a batch; every cell "
                   "needs one (drop those cells or assign them)")
    s = _to_categorical(s)
    adata.obs[BATCH_KEY] = s
    n = s.dropna().nunique()
    if n < need_batches:
        out.append(f"obs['{BATCH_KEY}']: {n} batch(es) but this task needs at least {need_batches}; "
                   "pick a dataset with more batches or concatenate datasets (batch = origin)")
    return out


def _check_labels(adata: AnnData, key: str, *, required: bool) -> list[str]:
    if key not in adata.obs:
        if key == LABEL_KEY and not required:
            # an unlabelled dataset is legitimate; record that explicitly
            adata.obs[key] = pd.Categorical([np.nan] * adata.n_obs, categories=[])
            return []
        if required:
            return [f"obs['{key}']: missing but this task needs it; add the labels "
                    "(NaN for unlabelled cells)"]
        return []
    s = adata.obs[key]
    present = pd.Index(s.dropna().astype(str).unique())
    bad = [p for p in PLACEHOLDER_LABELS if p in set(present)]
    out = []
    if bad:
        n_bad = int(s.astype(str).isin(bad).sum() - (s.isna().sum() if "nan" in bad else 0))
        out.append(f"obs['{key}']: {n_bad} cells labelled with placeholder strings {bad}; missing "
                   f"labels must be NaN: adata.obs['{key}'] = adata.obs['{key}']"
                   f".replace({bad!r}, np.nan)")
    s = _to_categorical(s)
    if isinstance(s.dtype, pd.CategoricalDtype):
        # unused placeholder categories are harmless but would leak into class lists
        unused = [c for c in s.cat.categories if c in PLACEHOLDER_LABELS and c not in bad]
        if unused:
            s = s.cat.remove_categories(unused)
    adata.obs[key] = s
    if required and s.notna().sum() == 0:
        out.append(f"obs['{key}']: no labelled cell but this task needs labels; "
                   "use a labelled dataset")
    return out


def _check_hierarchy(adata: AnnData, need: bool) -> list[str]:
    if LABEL_KEY not in adata.obs:
        return []  # already reported by the label check
    has_h = "hierarchy" in adata.uns
    has_c = COARSE_KEY in adata.obs
    if not has_h and not has_c:
        return [f"uns['hierarchy'] and obs['{COARSE_KEY}']: missing but this task needs a label "
                "hierarchy; add a fine -> coarse dict in uns['hierarchy']"] if need else []
    pairs = adata.obs[[LABEL_KEY]].copy()
    if has_c:
        pairs[COARSE_KEY] = adata.obs[COARSE_KEY]
    if not has_h:
        # derive the map from the columns when every fine label has a single parent
        lab = pairs.dropna().astype(str).drop_duplicates()
        multi = lab[LABEL_KEY][lab[LABEL_KEY].duplicated()].unique()
        if len(multi):
            return [f"obs['{COARSE_KEY}']: fine labels {list(multi[:5])} map to several coarse "
                    "labels; a hierarchy needs exactly one parent per fine label"]
        adata.uns["hierarchy"] = dict(zip(lab[LABEL_KEY], lab[COARSE_KEY]))
        return []
    h = adata.uns["hierarchy"]
    if not isinstance(h, Mapping):
        return [f"uns['hierarchy']: expected a dict fine -> coarse, got {type(h).__name__}"]
    h = {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in h.items()}
    bad_parent = [k for k, v in h.items() if not isinstance(v, str) or v in PLACEHOLDER_LABELS]
    if bad_parent:
        return [f"uns['hierarchy']: fine labels {bad_parent[:5]} have no valid coarse label "
                "(need a non-empty string)"]
    fine = pd.Index(adata.obs[LABEL_KEY].dropna().astype(str).unique())
    uncovered = [f for f in fine if f not in h]
    if uncovered:
        return [f"uns['hierarchy']: does not cover fine labels {sorted(uncovered)[:10]} of "
                f"obs['{LABEL_KEY}']; add a coarse parent for each"]
    adata.uns["hierarchy"] = h
    if not has_c:
        adata.obs[COARSE_KEY] = _to_categorical(adata.obs[LABEL_KEY].astype(object).map(h))
        return []
    lab = pairs.dropna().astype(str).drop_duplicates()
    wrong = [(f, c, h[f]) for f, c in lab.itertuples(index=False) if h[f] != c]
    if wrong:
        f, c, e = wrong[0]
        return [f"obs['{COARSE_KEY}']: disagrees with uns['hierarchy'] for {len(wrong)} fine labels "
                f"(e.g. '{f}' has coarse '{c}' but hierarchy says '{e}'); make them consistent"]
    return []


def _check_pseudotime(adata: AnnData, need: bool) -> list[str]:
    if PSEUDOTIME_KEY not in adata.obs:
        return [f"obs['{PSEUDOTIME_KEY}']: missing but this task needs it; add a float "
                "pseudotime (NaN for cells off the trajectory)"] if need else []
    s = adata.obs[PSEUDOTIME_KEY]
    if not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)):
        return [f"obs['{PSEUDOTIME_KEY}']: dtype {s.dtype} is not numeric; store a float "
                "pseudotime (NaN for cells off the trajectory)"]
    v = s.to_numpy(dtype=np.float64)
    if np.isinf(v).any():
        return [f"obs['{PSEUDOTIME_KEY}']: {int(np.isinf(v).sum())} infinite values; use NaN for "
                "cells off the trajectory"]
    adata.obs[PSEUDOTIME_KEY] = v
    if need and not np.isfinite(v).any():
        return [f"obs['{PSEUDOTIME_KEY}']: all NaN but this task needs a pseudotime"]
    return []


def _check_protein(adata: AnnData, need: bool) -> list[str]:
    try:
        p = adata.obsm[PROTEIN_KEY] if PROTEIN_KEY in list(adata.obsm.keys()) else None
    except ValueError as e:  # anndata refuses a DataFrame whose index drifted from obs_names
        return [f"obsm['{PROTEIN_KEY}']: protein table misaligned with obs ({str(e).splitlines()[0]}); "
                "reindex it with table.loc[adata.obs_names] (datasets.attach_protein does this)"]
    if p is None:
        return [f"obsm['{PROTEIN_KEY}']: missing but this task needs a protein (ADT) table; "
                "use a CITE-seq dataset"] if need else []
    if not isinstance(p, pd.DataFrame):
        return [f"obsm['{PROTEIN_KEY}']: a {type(p).__name__} without protein names; store a "
                "pandas.DataFrame indexed like obs with protein-name columns "
                "(datasets.attach_protein)"]
    out = []
    if not p.index.equals(adata.obs_names):
        out.append(f"obsm['{PROTEIN_KEY}']: protein table misaligned with obs (index differs from "
                   "obs_names); reindex it with table.loc[adata.obs_names]")
    if p.shape[1] == 0:
        out.append(f"obsm['{PROTEIN_KEY}']: no protein columns")
    if not p.columns.is_unique:
        out.append(f"obsm['{PROTEIN_KEY}']: duplicated protein names "
                   f"{list(p.columns[p.columns.duplicated()][:3])}; make them unique")
    non_num = [c for c in p.columns if not pd.api.types.is_numeric_dtype(p[c])]
    if non_num:
        out.append(f"obsm['{PROTEIN_KEY}']: non-numeric columns {non_num[:5]}; store numbers only")
    elif p.shape[1] and not np.isfinite(p.to_numpy(dtype=np.float64)).all():
        out.append(f"obsm['{PROTEIN_KEY}']: NaN/inf values; drop those cells or proteins")
    return out


def _check_source(adata: AnnData) -> list[str]:
    src: Optional[object] = adata.uns.get("source")
    if src is None:
        return []
    if not isinstance(src, Mapping):
        return [f"uns['source']: expected a dict with keys {list(_SOURCE_KEYS)}, got "
                f"{type(src).__name__}"]
    return []
