"""harmonization-bench datasets: data contract, simulator, preprocessing and dataset registry.

- :func:`validate` / :class:`DataContractError`: the data contract (DESIGN.md section 1);
- :func:`simulate`: the built-in default data with known ground truth;
- :mod:`datasets.preprocessing`: the paper's gene selection and normalisations;
- :data:`registry`, :func:`load`, :func:`list_datasets` / :func:`describe`: every dataset of
  the paper (real public sources), the shared stand-ins and the simulator.

Knows nothing of methods or the benchmark (DESIGN.md, dependency direction).
"""
from . import preprocessing
from .contract import DataContractError, attach_protein, validate
from .registry import (ChecksumError, DatasetSpec, DatasetUnavailableError, RemoteFile, describe,
                       list_datasets, load, registry, resolve_cache_dir, shared_data_dir, write_h5ad)
from .simulate import simulate
from . import sources  # noqa: F401  (registers every dataset)

__all__ = ["DataContractError", "attach_protein", "validate", "simulate", "preprocessing",
           "registry", "load", "list_datasets", "describe", "DatasetSpec", "RemoteFile",
           "DatasetUnavailableError", "ChecksumError", "resolve_cache_dir", "shared_data_dir", "write_h5ad"]
