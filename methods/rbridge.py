"""Shared R plumbing for the rpy2 adapters (Seurat, ComBat, edgeR, limma).

R is started lazily, on the first call that needs it, so importing an adapter (or listing
methods) never starts R. Data cross the boundary without dense copies:

* a cells x genes CSR count matrix *is* the CSC layout of its genes x cells transpose, so
  its ``indptr`` / ``indices`` / ``data`` arrays become an R ``dgCMatrix`` (genes x cells,
  the orientation every R single-cell package expects) by a single buffer copy each;
* an R matrix comes back through its memory view; R stores column-major, so an R
  genes x cells matrix reads as a numpy cells x genes array without a transpose.

R's console output is captured (not printed); an R error becomes :class:`RError` whose message
is R's own message plus the last lines R printed, so a ``failed`` row says what R said.
"""
from __future__ import annotations

import collections
import contextlib
import threading
from typing import Iterable, Optional, Sequence

import numpy as np
import scipy.sparse as sp

from .base import MethodInputError, MethodUnavailable

_LOCK = threading.RLock()
_STATE: dict = {"ready": False}
#: the last lines R wrote to its console (stdout and stderr), kept for error messages
CONSOLE_TAIL: collections.deque = collections.deque(maxlen=60)


class RError(RuntimeError):
    """An error raised inside R; the message is R's message (plus recent console lines)."""


def _console_write(text: str) -> None:
    for line in text.splitlines():
        if line.strip():
            CONSOLE_TAIL.append(line)


def _start_r():
    """Import rpy2, start the embedded R, and route its console into :data:`CONSOLE_TAIL`."""
    with _LOCK:
        if _STATE["ready"]:
            return _STATE["ro"]
        try:
            import warnings

            with warnings.catch_warnings():
                # rpy2 warns that R redefines LD_LIBRARY_PATH: harmless noise
                warnings.simplefilter("ignore", UserWarning)
                import rpy2.rinterface as ri
                import rpy2.robjects as ro
                from rpy2.rinterface_lib import callbacks

                ri.initr()
        except ImportError as exc:
            raise MethodUnavailable("rpy2 not installed (pip install rpy2==3.5.17; needs R)") from exc
        except Exception as exc:  # R missing or broken: the runner reports a skip
            raise MethodUnavailable(f"R could not be started through rpy2: {exc}") from exc
        callbacks.consolewrite_print = _console_write
        callbacks.consolewrite_warnerror = _console_write
        # R's BLAS/OpenMP read OMP_NUM_THREADS from this process's environment, which the
        # runner sets before the child starts (setting it from R now would come too late)
        _STATE.update(ready=True, ro=ro, ri=ri)
        return ro


def robjects():
    """The ``rpy2.robjects`` module, with R started."""
    return _start_r()


def _r_message(exc: BaseException) -> str:
    msg = str(exc).strip()
    tail = [line for line in CONSOLE_TAIL if line.strip()][-8:]
    if tail:
        msg += "\nR console (last lines):\n" + "\n".join(tail)
    return msg


@contextlib.contextmanager
def r_errors(context: str = "R"):
    """Turn an R error raised inside the block into :class:`RError` with R's message."""
    from rpy2.rinterface_lib.embedded import RRuntimeError

    try:
        yield
    except RRuntimeError as exc:
        raise RError(f"{context} failed: {_r_message(exc)}") from None


def require_r_packages(*packages: str) -> None:
    """Load R packages quietly; raise MethodUnavailable naming the missing one."""
    ro = _start_r()
    for pkg in packages:
        ok = ro.r(f'isTRUE(suppressPackageStartupMessages(requireNamespace("{pkg}", quietly = TRUE)))')[0]
        if not ok:
            raise MethodUnavailable(f"R package {pkg} not installed (apt-get install r-cran-/r-bioc-{pkg.lower()})")


def r_package_versions(packages: Iterable[str]) -> dict:
    """``{package: version}`` of installed R packages (for ``MethodResult.versions``), plus R itself."""
    ro = _start_r()
    out = {"R": str(ro.r("paste(R.version$major, R.version$minor, sep = '.')")[0])}
    for pkg in packages:
        try:
            out[pkg] = str(ro.r(f'as.character(utils::packageVersion("{pkg}"))')[0])
        except Exception:  # not installed: leave it out rather than guess
            continue
    return out


def r_function(source: str, name: str = "R function"):
    """Evaluate R ``source`` (an R ``function(...) {...}``) once and return a Python callable.

    The callable converts ``None`` to ``NULL``, numpy/str/number arguments to R vectors, and
    raises :class:`RError` with R's message when R fails. Console output is captured.
    """
    ro = _start_r()
    with r_errors(f"defining {name}"):
        fn = ro.r(source)

    def call(*args, **kwargs):
        args = [to_r(a) for a in args]
        kwargs = {k: to_r(v) for k, v in kwargs.items()}
        CONSOLE_TAIL.clear()
        with r_errors(name):
            return fn(*args, **kwargs)

    return call


# ---------------------------------------------------------------------------------------------
# conversions
# ---------------------------------------------------------------------------------------------


def to_r(value):
    """Convert a Python value to an R object (numpy arrays by one buffer copy)."""
    ro = _start_r()
    ri = _STATE["ri"]
    if value is None:
        return ri.NULL
    if isinstance(value, (ri.Sexp,)):
        return value
    if isinstance(value, bool):
        return ri.BoolSexpVector([value])
    if isinstance(value, (int, np.integer)):
        return ri.IntSexpVector([int(value)])
    if isinstance(value, (float, np.floating)):
        return ri.FloatSexpVector([float(value)])
    if isinstance(value, str):
        return ri.StrSexpVector([value])
    if isinstance(value, np.ndarray):
        if value.ndim == 2:
            return numpy_to_r_matrix(value)
        return numpy_to_r_vector(value)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return ri.StrSexpVector(list(value))
        return numpy_to_r_vector(np.asarray(value))
    if isinstance(value, dict):
        return ro.ListVector({k: to_r(v) for k, v in value.items()})
    raise TypeError(f"cannot pass {type(value).__name__} to R")


def numpy_to_r_vector(a: np.ndarray):
    """1-D numpy array -> R vector (integer, double, logical or character)."""
    _start_r()
    ri = _STATE["ri"]
    a = np.asarray(a)
    if a.dtype.kind == "b":
        return ri.BoolSexpVector(a.tolist())
    if a.dtype.kind in "iu":
        return ri.IntSexpVector.from_memoryview(memoryview(np.ascontiguousarray(a, dtype=np.int32)))
    if a.dtype.kind == "f":
        return ri.FloatSexpVector.from_memoryview(memoryview(np.ascontiguousarray(a, dtype=np.float64)))
    return ri.StrSexpVector([str(x) for x in a.tolist()])


def numpy_to_r_matrix(a: np.ndarray, rownames: Optional[Sequence[str]] = None,
                      colnames: Optional[Sequence[str]] = None):
    """2-D numpy array -> R numeric matrix of the same shape (one copy, to column-major)."""
    ro = _start_r()
    a = np.asarray(a, dtype=np.float64)
    vec = numpy_to_r_vector(np.asfortranarray(a).ravel(order="F"))
    m = ro.r["matrix"](vec, nrow=a.shape[0], ncol=a.shape[1])
    if rownames is not None or colnames is not None:
        m = ro.r["structure"](m, dimnames=ro.r["list"](
            to_r(list(map(str, rownames))) if rownames is not None else _STATE["ri"].NULL,
            to_r(list(map(str, colnames))) if colnames is not None else _STATE["ri"].NULL,
        ))
    return m


def r_matrix_to_numpy(m, transpose: bool = False) -> np.ndarray:
    """R numeric matrix -> numpy array (a copy). ``transpose=True`` returns ``t(m)`` for free:
    R is column-major, so an R genes x cells matrix read row-major is cells x genes."""
    ro = _start_r()
    with r_errors("reading an R matrix"):
        if ro.r["is.integer"](m)[0] or ro.r["is.logical"](m)[0]:
            m = ro.r["storage.mode<-"](m, "double")
        # the memory view is (nrow, ncol) with column-major strides: no copy until the end
        arr = np.asarray(m.memoryview())
    if transpose:
        return np.ascontiguousarray(arr.T)
    return np.ascontiguousarray(arr)


def csr_to_dgcmatrix(X, gene_names: Optional[Sequence[str]] = None,
                     cell_names: Optional[Sequence[str]] = None):
    """A cells x genes scipy sparse matrix -> an R ``Matrix::dgCMatrix`` of genes x cells.

    The CSR arrays of ``X`` are the CSC arrays of ``X.T``, so no dense copy and no sparse
    transpose is made; each of the three arrays is copied once into R memory.
    """
    ro = _start_r()
    if not sp.issparse(X):
        X = sp.csr_matrix(X)
    X = X.tocsr()
    X.sort_indices()
    n_cells, n_genes = X.shape
    if X.nnz >= 2**31:
        raise ValueError("matrix has more than 2^31 non-zeros, which a dgCMatrix cannot hold; subset the cells")
    ro.r('suppressPackageStartupMessages(library(Matrix))')
    dimnames = ro.r["list"](
        to_r([str(g) for g in gene_names]) if gene_names is not None else _STATE["ri"].NULL,
        to_r([str(c) for c in cell_names]) if cell_names is not None else _STATE["ri"].NULL,
    )
    with r_errors("building a dgCMatrix"):
        return ro.r["new"](
            "dgCMatrix",
            i=numpy_to_r_vector(X.indices.astype(np.int32, copy=False)),
            p=numpy_to_r_vector(X.indptr.astype(np.int32, copy=False)),
            x=numpy_to_r_vector(X.data.astype(np.float64, copy=False)),
            Dim=_STATE["ri"].IntSexpVector([n_genes, n_cells]),
            Dimnames=dimnames,
        )


def dgcmatrix_to_csr(m) -> sp.csr_matrix:
    """An R ``dgCMatrix`` of genes x cells -> a cells x genes scipy CSR (the inverse of
    :func:`csr_to_dgcmatrix`, again without a dense copy)."""
    ro = _start_r()
    with r_errors("reading a dgCMatrix"):
        m = ro.r["as"](m, "dgCMatrix")
        i = np.array(m.do_slot("i"), dtype=np.int32)
        p = np.array(m.do_slot("p"), dtype=np.int64)
        x = np.array(m.do_slot("x"), dtype=np.float64)
        n_genes, n_cells = (int(d) for d in m.do_slot("Dim"))
    return sp.csr_matrix((x, i, p), shape=(n_cells, n_genes))


def r_list_to_dict(lst) -> dict:
    """Named R list -> dict of its (still R) elements."""
    names = list(lst.names) if lst.names is not _STATE["ri"].NULL else []
    return {name: lst[i] for i, name in enumerate(names)}


def r_vector_to_numpy(v) -> np.ndarray:
    """R atomic vector -> numpy array (strings for character vectors and factors)."""
    ro = _start_r()
    if ro.r["is.factor"](v)[0]:
        v = ro.r["as.character"](v)
    if ro.r["is.character"](v)[0]:
        return np.array(list(v), dtype=object)
    return np.array(v)


def choose_backend(requested: str, r_package: str) -> str:
    """``"python"`` or ``"r"`` for a method with both a Python port and an R original:
    ``auto`` takes R ``r_package`` when it (and rpy2) are installed."""
    if requested not in ("auto", "python", "r"):
        raise MethodInputError(f"params['backend'] must be 'auto', 'python' or 'r', got {requested!r}")
    if requested == "python":
        return "python"
    import importlib.util

    from .registry import installed_r_packages

    have_r = importlib.util.find_spec("rpy2") is not None and r_package in (installed_r_packages() or ())
    if requested == "r" and not have_r:
        raise MethodUnavailable(f"R package {r_package} (with rpy2) is not installed; use params backend='python'")
    return "r" if have_r else "python"
