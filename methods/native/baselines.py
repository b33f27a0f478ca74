"""Label-transfer baselines on any embedding (paper, "Cell type annotation" and seed labeling):

- "taking the majority vote of the k-nearest neighbors around each unannotated cell (k = 10)"
  (:class:`KNNLabelTransfer`, :func:`knn_transfer`);
- "clustering the cells and taking a majority vote inside each cluster" with k-means
  (:class:`KMeansLabelTransfer`, :func:`kmeans_transfer`).

scikit-learn shaped: ``__init__`` stores parameters, ``fit(embedding, labels)`` learns from the
cells whose label is known (NaN = unlabelled), ``predict``/``predict_proba`` score any cells.
The scenario runner can apply them to any method's embedding (kNN on the scVI latent etc.).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..base import MethodInputError

#: the paper's neighbourhood size for kNN label transfer
PAPER_K = 10
#: candidate k for cross-validation
CV_GRID = (1, 3, 5, 10, 15, 20, 30, 50)


def _embedding(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise MethodInputError(f"embedding must be a non-empty (cells x dims) array, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise MethodInputError("embedding contains NaN or inf; fix the method that produced it")
    return X


def _known(labels, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=object).ravel()
    if len(y) != n:
        raise MethodInputError(f"labels has {len(y)} entries for {n} cells; pass one per cell (NaN = unlabelled)")
    known = ~pd.isna(pd.Series(y)).to_numpy()
    if not known.any():
        raise MethodInputError("no labelled cell (all labels NaN): label transfer needs some visible labels")
    return y, known


class KNNLabelTransfer:
    """Majority vote of the ``k`` nearest labelled cells (Euclidean) in an embedding.

    ``k``: an int, "paper" (k = 10) or "cv" (chosen from :data:`CV_GRID` by stratified 5-fold
    cross-validation of balanced (weighted) accuracy on the labelled cells). ``k`` is capped at
    the number of labelled cells.
    """

    def __init__(self, k=PAPER_K, seed: int = 0, cv_grid=CV_GRID):
        self.k = k
        self.seed = seed
        self.cv_grid = cv_grid

    def fit(self, embedding, labels):
        from sklearn.neighbors import KNeighborsClassifier

        X = _embedding(embedding)
        y, known = _known(labels, X.shape[0])
        Xl, yl = X[known], y[known].astype(str)
        self.k_ = self._choose_k(Xl, yl)
        self.knn_ = KNeighborsClassifier(n_neighbors=self.k_).fit(Xl, yl)
        self.classes_ = self.knn_.classes_
        self.n_labelled_ = int(known.sum())
        return self

    def _choose_k(self, Xl, yl) -> int:
        n = len(yl)
        if self.k == "paper":
            return min(PAPER_K, n)
        if self.k != "cv":
            if int(self.k) != self.k or self.k < 1:
                raise MethodInputError(f"k must be a positive int, 'paper' or 'cv', got {self.k!r}")
            return min(int(self.k), n)
        from sklearn.model_selection import StratifiedKFold, cross_val_score
        from sklearn.neighbors import KNeighborsClassifier

        min_class = pd.Series(yl).value_counts().min()
        folds = int(min(5, min_class))
        if folds < 2:  # a class with one labelled cell cannot be cross-validated
            return min(PAPER_K, n)
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.seed)
        grid = [k for k in self.cv_grid if k <= n - n // folds]
        scores = [cross_val_score(KNeighborsClassifier(n_neighbors=k), Xl, yl, cv=cv,
                                  scoring="balanced_accuracy").mean() for k in grid]
        return int(grid[int(np.argmax(scores))])

    def predict_proba(self, embedding) -> np.ndarray:
        return self.knn_.predict_proba(_embedding(embedding))

    def predict(self, embedding) -> np.ndarray:
        P = self.predict_proba(embedding)
        return self.classes_[P.argmax(1)].astype(object)  # ties: first class in sorted order


class KMeansLabelTransfer:
    """k-means on the embedding, then each cluster takes the majority label of its labelled
    cells (the paper's k-means seed-labelling baseline).

    ``n_clusters`` defaults to the number of visible classes. A cluster without any labelled
    cell takes the label distribution of the nearest cluster (by centroid) that has some.
    """

    def __init__(self, n_clusters: int | None = None, seed: int = 0, n_init: int = 10):
        self.n_clusters = n_clusters
        self.seed = seed
        self.n_init = n_init

    def fit(self, embedding, labels):
        from sklearn.cluster import KMeans

        X = _embedding(embedding)
        y, known = _known(labels, X.shape[0])
        self.classes_ = np.unique(y[known].astype(str)).astype(object)
        k = self.n_clusters or len(self.classes_)
        if not 1 <= k <= X.shape[0]:
            raise MethodInputError(f"n_clusters={k} must be between 1 and the number of cells ({X.shape[0]})")
        self.kmeans_ = KMeans(n_clusters=int(k), n_init=self.n_init, random_state=self.seed).fit(X)
        clusters = self.kmeans_.labels_
        counts = np.zeros((k, len(self.classes_)))
        cls_idx = np.searchsorted(self.classes_.astype(str), y[known].astype(str))
        np.add.at(counts, (clusters[known], cls_idx), 1.0)
        has = counts.sum(1) > 0
        centres = self.kmeans_.cluster_centers_
        for c in np.flatnonzero(~has):  # borrow from the nearest cluster that saw labels
            d = ((centres[has] - centres[c]) ** 2).sum(1)
            counts[c] = counts[np.flatnonzero(has)[np.argmin(d)]]
        self.cluster_proba_ = counts / counts.sum(1, keepdims=True)
        return self

    def predict_proba(self, embedding) -> np.ndarray:
        return self.cluster_proba_[self.kmeans_.predict(_embedding(embedding))]

    def predict(self, embedding) -> np.ndarray:
        return self.classes_[self.predict_proba(embedding).argmax(1)]


def _transfer(model, embedding, labels) -> tuple[np.ndarray, pd.DataFrame]:
    model.fit(embedding, labels)
    P = model.predict_proba(embedding)
    proba = pd.DataFrame(P, columns=[str(c) for c in model.classes_])
    return np.asarray(model.classes_[P.argmax(1)], dtype=object), proba


def knn_transfer(embedding, labels, *, k=PAPER_K, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """kNN label transfer on any embedding: (predicted label for every cell, probabilities
    DataFrame cells x classes). ``labels``: NaN for the cells to annotate."""
    return _transfer(KNNLabelTransfer(k=k, seed=seed), embedding, labels)


def kmeans_transfer(embedding, labels, *, n_clusters: int | None = None, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """k-means cluster majority-vote label transfer: (predictions, probabilities)."""
    return _transfer(KMeansLabelTransfer(n_clusters=n_clusters, seed=seed), embedding, labels)
