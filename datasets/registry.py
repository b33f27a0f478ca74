"""The dataset registry: every dataset by name, where it comes from, how to load it.

Three kinds of entries (``DatasetSpec.kind``):

- ``paper``: a dataset of the scANVI paper, with its real public source files
  (:class:`RemoteFile`: url, expected sha256/size where known). :func:`load` downloads each
  file once into the cache, verifies the checksum, converts to the data contract
  (DESIGN.md section 1), validates and caches the converted ``.h5ad``.
- ``shared``: a staged public stand-in in ``../shared/data`` (MANIFEST.md), registered by its
  file stem, with the paper dataset it stands in for.
- ``simulated``: :func:`datasets.simulate`, the built-in default data.

Cache: ``cache_dir`` argument, else ``$HARMONIZATION_BENCH_CACHE``, else
``~/.cache/harmonization-bench``; raw downloads in ``<cache>/raw/<name>/``, converted
files in ``<cache>/processed/<name>.h5ad``. Where no checksum was published we do not
invent one: the sha256 of the first download is recorded next to the file
(``<file>.sha256``) and checked on every later use.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
from anndata import AnnData

from .contract import validate

__all__ = ["write_h5ad", "RemoteFile", "DatasetSpec", "DatasetUnavailableError", "ChecksumError", "registry",
           "register", "load", "list_datasets", "describe", "resolve_cache_dir", "shared_data_dir",
           "download"]

CACHE_ENV = "HARMONIZATION_BENCH_CACHE"
SHARED_ENV = "HARMONIZATION_BENCH_SHARED_DATA"


class DatasetUnavailableError(RuntimeError):
    """A dataset's files cannot be obtained (offline, missing file); the message says how to fix."""


class ChecksumError(RuntimeError):
    """A downloaded file does not match its expected (or first recorded) sha256."""


@dataclass(frozen=True)
class RemoteFile:
    """One published source file. ``filename`` is its name in the cache."""

    url: str
    filename: str
    sha256: Optional[str] = None
    size: Optional[int] = None  # bytes, where known


@dataclass(frozen=True)
class DatasetSpec:
    """What the registry knows about one dataset.

    ``convert`` maps ``{filename: local path}`` of the downloaded files to an AnnData
    (paper datasets); ``loader`` builds the AnnData directly (shared, simulated).
    """

    name: str
    paper_name: str
    description: str
    kind: str = "paper"  # paper | shared | simulated
    files: tuple = ()
    convert: Optional[Callable[[dict], AnnData]] = None
    loader: Optional[Callable[..., AnnData]] = None
    shared_file: Optional[str] = None  # shared: file name inside the shared data folder
    citation: str = ""
    license: str = ""
    stands_in_for: Optional[str] = None
    n_cells: Optional[int] = None  # as published (paper, Supplementary Table 1)
    n_batches: Optional[int] = None
    has_labels: bool = True
    notes: str = ""
    urls: tuple = field(default=())

    @property
    def all_urls(self) -> tuple:
        return tuple(f.url for f in self.files) + tuple(self.urls)


registry: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to :data:`registry` (a name can be registered once)."""
    if spec.name in registry:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    registry[spec.name] = spec
    return spec


def resolve_cache_dir(cache_dir: Optional[os.PathLike] = None) -> Path:
    """The cache root: argument, ``$HARMONIZATION_BENCH_CACHE``, or ``~/.cache/harmonization-bench``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "harmonization-bench"


def shared_data_dir() -> Path:
    """``$HARMONIZATION_BENCH_SHARED_DATA`` or the ``shared/data`` folder next to the repository."""
    env = os.environ.get(SHARED_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, remote: RemoteFile) -> str:
    """Check ``path`` against the published sha256, else against the one recorded at first use."""
    digest = _sha256(path)
    record = path.with_name(path.name + ".sha256")
    expected = remote.sha256 or (record.read_text().split()[0] if record.exists() else None)
    if expected and digest != expected:
        raise ChecksumError(
            f"{path}: sha256 {digest} does not match the expected {expected} "
            f"({'published' if remote.sha256 else 'recorded at first download'}) for "
            f"{remote.url}; delete the file to download it again")
    if not record.exists():
        record.write_text(f"{digest}  {remote.filename}\n")
    return digest


def download(remote: RemoteFile, dest_dir: Path, *, timeout: float = 60.0) -> Path:
    """Download ``remote`` into ``dest_dir`` once (atomic rename), verify it, return its path.

    Offline or on any network error: :class:`DatasetUnavailableError` telling where to put
    the file by hand.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / remote.filename
    if not path.exists():
        tmp = path.with_name(path.name + ".part")
        try:
            req = urllib.request.Request(remote.url, headers={"User-Agent": "harmonization-bench"})
            with urllib.request.urlopen(req, timeout=timeout) as r, open(tmp, "wb") as out:
                shutil.copyfileobj(r, out, 1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as e:
            tmp.unlink(missing_ok=True)
            raise DatasetUnavailableError(
                f"could not download {remote.url} ({e}).\n"
                f"Download it by hand and put it at:\n  {path}\n"
                f"(the cache root is set by cache_dir=... or ${CACHE_ENV})") from e
        tmp.replace(path)
    _verify(path, remote)
    return path


def write_h5ad(adata: AnnData, path: os.PathLike) -> None:
    """``adata.write_h5ad(path)`` that also works under pandas 3, whose string columns and indexes
    are string arrays: anndata (0.11+) writes those only when asked to (the setting is restored)."""
    import contextlib

    import anndata

    allow = (anndata.settings.override(allow_write_nullable_strings=True)
             if hasattr(anndata.settings, "allow_write_nullable_strings") else contextlib.nullcontext())
    with allow:
        adata.write_h5ad(path)


def _processed_path(spec: DatasetSpec, root: Path) -> Path:
    return root / "processed" / f"{spec.name}.h5ad"


def _source(spec: DatasetSpec, digests: dict) -> dict:
    return {"name": spec.name, "paper_name": spec.paper_name,
            "url": " ".join(spec.all_urls), "sha256": json.dumps(digests, sort_keys=True),
            "citation": spec.citation, "license": spec.license}


def load(name: str, cache_dir: Optional[os.PathLike] = None, **kwargs) -> AnnData:
    """Load a registered dataset as a validated AnnData (see the module docstring).

    ``kwargs`` go to the loader of ``simulated`` (e.g. ``n_cells=...``) and are refused
    elsewhere. A converted paper dataset is cached and read back on later calls.
    """
    import anndata

    if name not in registry:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(registry)}")
    spec = registry[name]
    if kwargs and spec.kind != "simulated":
        raise TypeError(f"dataset {name!r} takes no options (got {sorted(kwargs)})")
    if spec.kind == "simulated":
        return spec.loader(**kwargs)
    if spec.kind == "shared":
        path = shared_data_dir() / spec.shared_file
        if not path.exists():
            raise DatasetUnavailableError(
                f"shared dataset {name!r} not found at {path}; set ${SHARED_ENV} to the "
                "folder holding the shared .h5ad files")
        return validate(anndata.read_h5ad(path))
    root = resolve_cache_dir(cache_dir)
    out = _processed_path(spec, root)
    if out.exists():
        return validate(anndata.read_h5ad(out))
    raw = root / "raw" / spec.name
    paths, digests = {}, {}
    for f in spec.files:
        paths[f.filename] = download(f, raw)
        digests[f.filename] = _verify(paths[f.filename], f)
    adata = spec.convert(paths)
    adata.uns["source"] = _source(spec, digests)
    adata = validate(adata)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    write_h5ad(adata, tmp)
    tmp.replace(out)
    return adata


def _available(spec: DatasetSpec, root: Path) -> bool:
    if spec.kind == "simulated":
        return True
    if spec.kind == "shared":
        return (shared_data_dir() / spec.shared_file).exists()
    return _processed_path(spec, root).exists() or all(
        (root / "raw" / spec.name / f.filename).exists() for f in spec.files)


def _h5ad_summary(path: Path) -> dict:
    """Shape, batches and labels of an h5ad without loading X."""
    import anndata

    a = anndata.read_h5ad(path, backed="r")
    try:
        obs = a.obs
        return {"n_cells": a.n_obs, "n_genes": a.n_vars,
                "n_batches": int(obs["batch"].nunique()) if "batch" in obs else None,
                "n_labels": int(obs["cell_type"].nunique()) if "cell_type" in obs else 0}
    finally:
        a.file.close()


def list_datasets(cache_dir: Optional[os.PathLike] = None) -> pd.DataFrame:
    """One row per registered dataset: name, kind, paper dataset, shape, batches, labels, availability.

    Shapes are read from the local file when there is one (shared data, converted cache),
    otherwise the published cell count is shown with the gene count unknown.
    """
    root = resolve_cache_dir(cache_dir)
    rows = []
    for spec in registry.values():
        avail = _available(spec, root)
        info = {"n_cells": spec.n_cells, "n_genes": None, "n_batches": spec.n_batches,
                "n_labels": None}
        local = (shared_data_dir() / spec.shared_file if spec.kind == "shared"
                 else _processed_path(spec, root))
        if spec.kind != "simulated" and local is not None and local.exists():
            info.update(_h5ad_summary(local))
        if spec.kind == "simulated":
            info.update({"n_cells": 2000, "n_genes": 500, "n_batches": 2, "n_labels": 5})
        rows.append({
            "name": spec.name, "kind": spec.kind,
            "paper_dataset": spec.stands_in_for if spec.kind == "shared" else spec.paper_name,
            "n_cells": info["n_cells"], "n_genes": info["n_genes"],
            "n_batches": info["n_batches"], "has_labels": spec.has_labels,
            "n_labels": info["n_labels"], "available_locally": avail,
            "source": spec.all_urls[0] if spec.all_urls else (
                str(shared_data_dir() / spec.shared_file) if spec.shared_file else ""),
        })
    df = pd.DataFrame(rows)
    for c in ("n_cells", "n_genes", "n_batches", "n_labels"):
        df[c] = df[c].astype("Int64")
    return df


def describe(cache_dir: Optional[os.PathLike] = None) -> pd.DataFrame:
    """The table ``python -m benchmark datasets`` prints (same as :func:`list_datasets`)."""
    return list_datasets(cache_dir)
