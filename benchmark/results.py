"""Tidy result rows (DESIGN.md section 3).

Every number the harness produces is one row with these columns. ``k``, ``cell_type``
and ``bin`` are filled when the metric is a curve over k, per cell type or per pseudotime
bin, and left empty (NaN) otherwise. ``status`` is ok | skipped | failed; a skipped or
failed job writes one row with ``metric`` = "status" and the reason in ``error``.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd

COLUMNS = [
    "scenario", "dataset", "method", "seed", "metric", "value",
    "k", "cell_type", "bin", "params_hash", "status", "error",
]
STATUSES = ("ok", "skipped", "failed")


def params_hash(params: Any) -> str:
    """Stable short hash of a JSON-able description of a job (method params, inputs...)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def row(scenario: str, dataset: str, method: str, seed: int, metric: str, value: float, *,
        k: Optional[int] = None, cell_type: Optional[str] = None, bin: Optional[int] = None,
        params_hash: str = "", status: str = "ok", error: str = "") -> dict:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    return {
        "scenario": scenario, "dataset": dataset, "method": method, "seed": int(seed),
        "metric": metric, "value": float(value) if value is not None else np.nan,
        "k": np.nan if k is None else int(k), "cell_type": cell_type if cell_type is not None else np.nan,
        "bin": np.nan if bin is None else int(bin), "params_hash": params_hash,
        "status": status, "error": error or "",
    }


def to_frame(rows: Iterable[dict]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for c in COLUMNS:
        if c not in df:
            df[c] = np.nan
    return df[COLUMNS]


def read_results(path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"cell_type": "object", "error": "object", "params_hash": "object"},
                     keep_default_na=True)
    missing = [c for c in COLUMNS if c not in df]
    if missing:
        raise ValueError(f"{path}: not a results.csv (missing columns {missing})")
    df["error"] = df["error"].fillna("")
    return df
