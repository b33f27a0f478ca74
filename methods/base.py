"""The contract between the runner and a method (DESIGN.md section 2).

A method is a plain function ``fn(adata, task) -> dict`` registered with
:func:`methods.registry.register`. It receives an AnnData that obeys the data
contract (DESIGN.md section 1) with hidden labels already masked to NaN, and a
:class:`TaskSpec`. It returns a dict whose keys are a subset of
:data:`OUTPUT_KEYS`; the runner wraps that dict into a :class:`MethodResult`
with wall time, peak memory and versions.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd

#: what a method can do. ``embed``: joint latent (n_cells x d); ``correct``: corrected
#: expression (n_cells x n_genes); ``classify``: labels + per-class probabilities for the
#: unlabelled cells; ``de``: per-gene scores for a comparison of two groups.
CAPABILITIES = ("embed", "correct", "classify", "de")

#: keys a method's output dict may hold
OUTPUT_KEYS = (
    "embedding",  # np.ndarray (n_cells, d), rows in adata.obs order
    "corrected",  # np.ndarray or scipy.sparse (n_cells, n_genes), columns = adata.var_names
    "labels",  # np.ndarray (n_cells,) of predicted label strings (NaN/None = unassigned)
    "probabilities",  # pd.DataFrame (n_cells, n_classes), index = obs_names, columns = classes
    "de",  # pd.DataFrame indexed by gene with at least a 'score' column (higher = more DE)
    "extras",  # dict of anything else worth keeping (e.g. per-level hierarchical predictions)
)


@dataclass
class TaskSpec:
    """What the runner asks of a method.

    ``label_key`` names the column holding the *visible* labels (hidden ones are NaN).
    ``outputs`` lists the capabilities the scenario wants; a method returns what it can
    among them. ``params`` overrides the method's registered defaults (e.g. ``n_epochs``).
    ``de_groups`` = (group1, group2) label values to compare when "de" is requested
    (group2 may be None for one-vs-rest); ``de_key`` the obs column defining the groups.
    """

    batch_key: str = "batch"
    label_key: str = "cell_type"
    seed: int = 0
    n_latent: int = 10
    outputs: tuple = ("embed",)
    params: dict = field(default_factory=dict)
    time_limit: Optional[float] = None  # seconds; enforced by the runner, not the method
    memory_limit_gb: Optional[float] = None  # enforced by the runner
    de_key: Optional[str] = None
    de_groups: Optional[tuple] = None
    hierarchy: Optional[dict] = None  # fine -> coarse label map when labels form a tree
    coarse_label_key: Optional[str] = None
    n_threads: Optional[int] = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MethodResult:
    """A method's outputs plus how it ran. ``status`` is ok | failed | skipped."""

    method: str
    status: str = "ok"
    embedding: Optional[np.ndarray] = None
    corrected: Any = None
    labels: Optional[np.ndarray] = None
    probabilities: Optional[pd.DataFrame] = None
    de: Optional[pd.DataFrame] = None
    extras: dict = field(default_factory=dict)
    wall_time_s: float = float("nan")
    peak_memory_mb: float = float("nan")
    versions: dict = field(default_factory=dict)
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class MethodInputError(ValueError):
    """A method was called with inputs it cannot use (names the field and the fix)."""


class MethodUnavailable(RuntimeError):
    """A requirement of the method is missing; the runner turns this into a ``skipped`` row."""
