"""The shared engine of the scenarios (DESIGN.md section 3, issue 7).

A :class:`Scenario` is a small declarative description of one task of the paper:

* ``build(source, profile, seed) -> list[Inputs]``: the inputs, built from a registered dataset (or
  the simulator) and perturbed as the paper does, hidden labels already masked;
* ``methods``: the registered methods that apply (by name; :class:`MethodRun` for a variant with
  its own parameters), turned into ``skipped`` rows by the runner when they cannot run here;
* ``score(inputs, result, profile) -> list[dict]``: the metrics, as keyword arguments of
  :func:`benchmark.results.row` (metric, value, k, cell_type, bin, and ``method`` for derived rows
  such as ``scvi+knn``);
* ``summarize(frame) -> list[dict]`` (optional): rows computed across jobs (the scaling exponent);
* ``paper``: the numbers the paper publishes for it, for the report's paper-vs-ours table.

The runner (:mod:`benchmark.runner`) does the rest: one isolated job per (inputs, method, seed),
caching, incremental rows, artifacts.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp

from methods.base import TaskSpec

SIMULATED = "simulated"


@dataclass(frozen=True)
class MethodRun:
    """A method as a scenario runs it: registry ``method`` under the row label ``label``.

    ``params`` override the method's defaults; ``task`` overrides TaskSpec fields (e.g. a
    hierarchy only for the hierarchical variant).
    """

    label: str
    method: str
    params: dict = field(default_factory=dict)
    task: dict = field(default_factory=dict)


def as_run(m) -> MethodRun:
    return m if isinstance(m, MethodRun) else MethodRun(label=m, method=m)


@dataclass
class Inputs:
    """One built input: what the methods see (``adata``) and what only the scoring sees (``truth``).

    ``dataset`` is the row label (source plus variant, e.g. ``cellbench_mixology[removed:A549]``);
    ``methods`` (labels) restricts the scenario's methods for this input (None = all);
    ``method_suffix`` tells apart the same method run on two variants of one input.
    """

    dataset: str
    adata: object
    truth: dict
    task: TaskSpec
    methods: Optional[tuple] = None
    meta: dict = field(default_factory=dict)
    method_suffix: str = ""  # appended to the method label, e.g. "[labels:A]" for scANVI per side


@dataclass(frozen=True)
class Scenario:
    name: str
    figure: str
    description: str
    sources: tuple  # registered dataset names (or "simulated") it runs on by default
    build: Callable  # (source, profile, seed) -> list[Inputs]
    methods: tuple  # names or MethodRun
    score: Callable  # (inputs, MethodResult, profile) -> list[dict]
    outputs: tuple = ("embed",)
    summarize: Optional[Callable] = None
    paper: dict = field(default_factory=dict)  # {(method label, metric): published value}
    paper_notes: str = ""

    def runs(self) -> tuple:
        return tuple(as_run(m) for m in self.methods)


# ----------------------------------------------------------------------------- input helpers

def load_source(name: str):
    """A registered dataset by name (``datasets.load``)."""
    import datasets

    return datasets.load(name)


def simulate(**kw):
    import datasets

    return datasets.simulate(**kw)


def masked(adata, hide, label_key: str = "cell_type"):
    """Copy of ``adata`` with the labels of cells in ``hide`` (bool mask) set to NaN."""
    out = adata.copy()
    labels = out.obs[label_key].astype(object).copy()
    labels[np.asarray(hide)] = np.nan
    out.obs[label_key] = pd.Categorical(labels)
    return out


def subsample(adata, max_cells: Optional[int], seed: int, stratify: Optional[str] = "batch"):
    """At most ``max_cells`` cells, drawn per ``stratify`` group in proportion (deterministic)."""
    if not max_cells or adata.n_obs <= max_cells:
        return adata
    rng = np.random.default_rng(seed)
    frac = max_cells / adata.n_obs
    keep = []
    groups = adata.obs[stratify].astype(str).to_numpy() if stratify else np.zeros(adata.n_obs, dtype=str)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        n = max(1, int(round(len(idx) * frac)))
        keep.append(rng.choice(idx, size=n, replace=False))
    return adata[np.sort(np.concatenate(keep))].copy()


def select_genes(adata, n_top: Optional[int], batch_key: str = "batch"):
    """The paper's gene selection (top genes by dispersion per batch, union), from ``datasets``."""
    if not n_top or adata.n_vars <= n_top:
        return adata
    from datasets.preprocessing import select_genes_by_dispersion

    genes = set(select_genes_by_dispersion(adata, n_top=n_top, batch_key=batch_key))
    return adata[:, [g for g in adata.var_names if g in genes]].copy()


def drop_empty(adata):
    """Remove genes and cells without any count (after subsetting, some become empty)."""
    X = adata.X
    cells = np.asarray(X.sum(axis=1)).ravel() > 0
    adata = adata[cells]
    genes = np.asarray(adata.X.sum(axis=0)).ravel() > 0
    return adata[:, genes].copy()


def concat(adatas: dict, label_keys=("cell_type",)):
    """Concatenate AnnData objects on their shared genes; ``batch`` = the dict key."""
    import anndata as ad

    genes = None
    for a in adatas.values():
        names = set(a.var_names)
        genes = list(a.var_names) if genes is None else [g for g in genes if g in names]
    parts = []
    for name, a in adatas.items():
        a = a[:, genes].copy()
        keep = {k: a.obs[k].astype(object).to_numpy() for k in label_keys if k in a.obs}
        a.obs = pd.DataFrame(keep, index=[f"{name}:{i}" for i in a.obs_names])
        a.obs["batch"] = name
        a.obsm = {}
        a.uns = {}
        a.layers = {}
        a.var = pd.DataFrame(index=genes)
        parts.append(a)
    out = ad.concat(parts, join="inner")
    out.obs["batch"] = pd.Categorical(out.obs["batch"])
    for k in label_keys:
        if k in out.obs:
            out.obs[k] = pd.Categorical(out.obs[k])
    out.X = sp.csr_matrix(out.X, dtype=np.float32)
    return out


def log_normalize(X, target_sum: float = 1e4):
    """log1p(counts / library * target_sum) (Seurat's LogNormalize), dense float64."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    lib = X.sum(axis=1, keepdims=True)
    lib[lib == 0] = 1
    return np.log1p(X / lib * target_sum)


def pca(X, n_comps: int, seed: int):
    """Dense PCA (scikit-learn) with ``n_comps`` clipped to what the data allow."""
    from sklearn.decomposition import PCA

    n = max(1, min(n_comps, X.shape[0] - 1, X.shape[1]))
    return PCA(n_components=n, random_state=seed).fit_transform(X)


def per_batch_reference(adata, n_comps: int, seed: int, batch_key: str = "batch") -> dict:
    """PCA of each batch alone on log-normalised counts: the paper's 'individual dataset latent
    space' for kNN purity (Online Methods, Seurat PCA with 10 components)."""
    out = {}
    batches = adata.obs[batch_key].astype(str).to_numpy()
    for b in np.unique(batches):
        idx = np.flatnonzero(batches == b)
        out[b] = (idx, pca(log_normalize(adata.X[idx]), n_comps, seed))
    return out


def truth_of(adata, **extra) -> dict:
    """The evaluation-only arrays of an input, copied before any masking."""
    t = {"batch": adata.obs["batch"].astype(str).to_numpy(),
         "labels": adata.obs["cell_type"].astype(object).to_numpy() if "cell_type" in adata.obs else None}
    t.update(extra)
    return t


def with_task(inputs_task: TaskSpec, **kw) -> TaskSpec:
    return dataclasses.replace(inputs_task, **kw)


# ----------------------------------------------------------------------------- result helpers

def embedding_of(result, n_latent: int = 10, seed: int = 0) -> Optional[np.ndarray]:
    """The method's joint latent; for correction-only methods, PCA of its corrected matrix."""
    if result.embedding is not None:
        return np.asarray(result.embedding, dtype=np.float64)
    if result.corrected is not None:
        X = result.corrected.toarray() if sp.issparse(result.corrected) else np.asarray(result.corrected)
        return pca(np.asarray(X, dtype=np.float64), n_latent, seed)
    return None


def knn_transfer(latent, labels, train_mask, k: int = 10) -> np.ndarray:
    """Labels for every cell by majority vote of its k nearest labelled cells (paper: k = 10)."""
    from sklearn.neighbors import KNeighborsClassifier

    train = np.flatnonzero(train_mask)
    clf = KNeighborsClassifier(n_neighbors=min(k, len(train)))
    clf.fit(latent[train], np.asarray(labels, dtype=object)[train].astype(str))
    return clf.predict(latent).astype(object)


def kmeans_transfer(latent, labels, train_mask, n_clusters: int, seed: int) -> np.ndarray:
    """k-means on the latent, each cluster named by the majority label of its labelled cells
    (paper, seed labeling: 'clustering the cells and taking a majority vote inside each cluster');
    a cluster without labelled cells takes the label of the nearest labelled cell's cluster."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(latent)
    labels = np.asarray(labels, dtype=object)
    named = {}
    for c in range(n_clusters):
        members = (km.labels_ == c) & np.asarray(train_mask)
        if members.any():
            vals, counts = np.unique(labels[members].astype(str), return_counts=True)
            named[c] = vals[np.argmax(counts)]
    if not named:
        raise ValueError("k-means transfer needs at least one labelled cell")
    centers = km.cluster_centers_
    for c in range(n_clusters):
        if c not in named:
            donors = list(named)
            nearest = donors[int(np.argmin(((centers[donors] - centers[c]) ** 2).sum(1)))]
            named[c] = named[nearest]
    return np.array([named[c] for c in km.labels_], dtype=object)


def source_label(source: str, variant: str = "") -> str:
    return f"{source}[{variant}]" if variant else source


# ----------------------------------------------------------------------------- scoring helpers

def usable_ks(ks, n: int) -> list:
    return [int(k) for k in ks if k < n]


def mixing_rows(latent, batches, ks, seed: int, *, cells=None, cell_type=None, bin=None) -> list:
    """Batch entropy of mixing over k (paper, Online Methods); one graph for every k."""
    from benchmark.metrics.mixing import batch_entropy_mixing
    from benchmark.metrics.neighbors import compute_neighbors

    ks = usable_ks(ks, len(latent))
    if not ks:
        return []
    nn = compute_neighbors(latent, max(ks), seed=seed)
    return [dict(metric="batch_entropy_mixing", k=k, cell_type=cell_type, bin=bin,
                 value=batch_entropy_mixing(nn, batches, k=k, seed=seed, cells=cells)) for k in ks]


def purity_rows(latent, batches, batch_reference: dict, ks) -> list:
    """kNN purity over k against each batch's own PCA (paper, Online Methods)."""
    from benchmark.metrics.purity import knn_purity_curve

    b = np.asarray(batches).astype(str)
    own = {}
    for name, (idx, emb) in batch_reference.items():
        own[name] = emb  # rows of batch ``name`` in obs order == order in the joint latent
    smallest = min(len(idx) for idx, _ in batch_reference.values())
    ks = usable_ks(ks, smallest)
    if not ks:
        return []
    curve = knn_purity_curve(latent, b, own, ks=ks)
    return [dict(metric="knn_purity", k=int(r.k), value=float(r.value)) for r in curve.itertuples()]


def classification_rows(y_true, y_pred, *, method: Optional[str] = None) -> list:
    """accuracy, weighted accuracy and per-class accuracy (paper, Online Methods)."""
    from benchmark.metrics.classification import accuracy, per_class_accuracy, weighted_accuracy

    extra = {"method": method} if method else {}
    rows = [dict(metric="accuracy", value=accuracy(y_true, y_pred), **extra),
            dict(metric="weighted_accuracy", value=weighted_accuracy(y_true, y_pred), **extra)]
    for r in per_class_accuracy(y_true, y_pred).itertuples():
        rows.append(dict(metric="per_class_accuracy", value=float(r.accuracy), cell_type=str(r.cell_type), **extra))
    return rows


def calibration_rows(y_true, y_pred, probabilities, *, n_bins: int = 10, method: Optional[str] = None) -> list:
    """Posterior calibration: mean max posterior probability and expected calibration error
    (|accuracy - confidence| averaged over confidence bins, weighted by cells)."""
    from benchmark.metrics.classification import max_posterior

    t = pd.Series(np.asarray(y_true, dtype=object))
    keep = ~t.isna().to_numpy()
    conf = max_posterior(probabilities)[keep]
    correct = (np.asarray(y_pred, dtype=object)[keep].astype(str) == t[keep].astype(str).to_numpy())
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, n_bins - 1)
    ece = sum(abs(correct[which == b].mean() - conf[which == b].mean()) * (which == b).mean()
              for b in range(n_bins) if (which == b).any())
    extra = {"method": method} if method else {}
    return [dict(metric="max_posterior_mean", value=float(conf.mean()), **extra),
            dict(metric="expected_calibration_error", value=float(ece), **extra)]
