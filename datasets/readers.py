"""Readers for the file formats the paper's datasets are published in.

Each returns a plain AnnData of raw counts (cells x genes, CSR) with whatever cell
metadata the file carries; the dataset converters in :mod:`datasets.sources` map that
onto the data contract. Only h5py/scipy/pandas are used (no loompy/scanpy dependency).
"""
from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path
from typing import Optional

import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from anndata import AnnData

__all__ = ["read_10x_mtx_tar", "read_10x_h5", "read_loom", "read_dense_table",
           "read_table_with_header_rows", "extract_member"]


def _text(b) -> str:
    return b.decode() if isinstance(b, bytes) else str(b)


def read_10x_mtx_tar(path: Path, genome: Optional[str] = None) -> AnnData:
    """10x ``*_gene_bc_matrices.tar.gz`` (CellRanger 1/2: matrix.mtx, genes.tsv, barcodes.tsv).

    ``genome`` picks the folder when the archive holds several (e.g. ``hg19``); by default
    the first folder with a ``matrix.mtx`` is used. Gene symbols become ``var_names``
    (made unique), Ensembl ids ``var["gene_ids"]``.
    """
    with tarfile.open(path, "r:*") as tar:
        names = tar.getnames()
        mtx = [n for n in names if n.endswith(("matrix.mtx", "matrix.mtx.gz"))
               and (genome is None or f"/{genome}/" in f"/{n}")]
        if not mtx:
            raise ValueError(f"{path}: no matrix.mtx in the archive (genome={genome!r})")
        folder = mtx[0].rsplit("/", 1)[0] if "/" in mtx[0] else ""
        pre = folder + "/" if folder else ""

        def member(*cands):
            for c in cands:
                if pre + c in names:
                    data = tar.extractfile(pre + c).read()
                    return gzip.decompress(data) if c.endswith(".gz") else data
            raise ValueError(f"{path}: none of {cands} next to {mtx[0]}")

        X = scipy.io.mmread(io.BytesIO(member("matrix.mtx", "matrix.mtx.gz")))
        genes = pd.read_csv(io.BytesIO(member("genes.tsv", "features.tsv.gz", "features.tsv")),
                            sep="\t", header=None)
        barcodes = pd.read_csv(io.BytesIO(member("barcodes.tsv", "barcodes.tsv.gz")),
                               sep="\t", header=None)[0].astype(str)
    adata = AnnData(sp.csr_matrix(X.T, dtype=np.float32))
    adata.obs_names = barcodes.to_numpy()
    symbols = genes[1] if genes.shape[1] > 1 else genes[0]
    adata.var_names = symbols.astype(str).to_numpy()
    adata.var["gene_ids"] = genes[0].astype(str).to_numpy()
    adata.var_names_make_unique()
    return adata


def read_10x_h5(path: Path, genome: Optional[str] = None, genes: Optional[np.ndarray] = None
                ) -> AnnData:
    """10x CellRanger 1/2 HDF5 (``/<genome>/{data,indices,indptr,shape,genes,gene_names,barcodes}``).

    ``genes`` (integer positions) keeps only those genes while reading, which is how the
    1.3 M-cell BRAIN-LARGE file fits in memory.
    """
    with h5py.File(path, "r") as f:
        genome = genome or next(iter(f.keys()))
        g = f[genome]
        n_genes, n_cells = (int(v) for v in g["shape"][()])
        X = sp.csc_matrix((g["data"][()].astype(np.float32), g["indices"][()], g["indptr"][()]),
                          shape=(n_genes, n_cells))
        ids = np.array([_text(v) for v in g["genes"][()]])
        symbols = np.array([_text(v) for v in g["gene_names"][()]])
        barcodes = np.array([_text(v) for v in g["barcodes"][()]])
    X = X.T.tocsr()
    if genes is not None:
        X, ids, symbols = X[:, genes], ids[genes], symbols[genes]
    adata = AnnData(X)
    adata.obs_names = barcodes
    adata.var_names = symbols
    adata.var["gene_ids"] = ids
    adata.var_names_make_unique()
    return adata


def read_loom(path: Path, gene_attr: str = "Gene", block: int = 4096) -> AnnData:
    """Loom file (``/matrix`` genes x cells, ``/row_attrs``, ``/col_attrs``) read in column blocks."""
    with h5py.File(path, "r") as f:
        M = f["matrix"]
        n_genes, n_cells = M.shape
        parts = []
        for s in range(0, n_cells, block):
            parts.append(sp.csr_matrix(np.asarray(M[:, s:s + block], dtype=np.float32).T))
        obs = {}
        for k, v in f["col_attrs"].items():
            a = v[()]
            if a.ndim == 1 and a.shape[0] == n_cells:
                obs[k] = [_text(x) for x in a] if a.dtype.kind in "SOU" else a
        genes = [_text(x) for x in f["row_attrs"][gene_attr][()]]
    obs = pd.DataFrame(obs, index=pd.Index([str(i) for i in range(n_cells)]))
    adata = AnnData(sp.vstack(parts, format="csr"), obs=obs)
    adata.obs_names = [str(i) for i in range(n_cells)] if "CellID" not in obs else [
        str(x) for x in obs["CellID"]]
    adata.var_names = genes
    adata.var_names_make_unique()
    adata.obs_names_make_unique()
    return adata


def read_dense_table(path_or_buffer, *, sep: str = ",", genes_in_rows: bool = True) -> AnnData:
    """A dense text table of counts with gene and cell names (CSV/TSV, gzip allowed)."""
    df = pd.read_csv(path_or_buffer, sep=sep, index_col=0)
    if genes_in_rows:
        df = df.T
    adata = AnnData(sp.csr_matrix(df.to_numpy(dtype=np.float32)))
    adata.obs_names = df.index.astype(str)
    adata.var_names = df.columns.astype(str)
    adata.var_names_make_unique()
    return adata


#: metadata row names of the Linnarsson-lab tables (numeric ones, e.g. age, look like genes)
LINNARSSON_META_ROWS = {"cellid", "cell_id", "cluster_name", "age(days)", "age", "sex", "strain",
                        "group #", "tissue", "well", "chip", "level1class", "level2class"}


def read_table_with_header_rows(path_or_buffer, sep: str = "\t") -> AnnData:
    """Linnarsson-lab tables: genes in rows after a few metadata rows (cellid, cluster_name, ...).

    The metadata rows are the leading rows that are not all numeric or whose name is a
    known metadata key (:data:`LINNARSSON_META_ROWS`, e.g. the numeric ``age(days)``); they
    become ``obs`` columns named by their first field.
    """
    raw = pd.read_csv(path_or_buffer, sep=sep, header=None, index_col=0, dtype=str)
    numeric = raw.apply(lambda r: pd.to_numeric(r, errors="coerce").notna().all(), axis=1)
    is_meta = ~numeric.to_numpy() | raw.index.astype(str).str.lower().isin(LINNARSSON_META_ROWS)
    if is_meta.all():
        raise ValueError("no numeric count rows found in the table")
    first = int(np.argmin(is_meta))
    meta = raw.iloc[:first].T
    meta.columns = [str(c) for c in raw.index[:first]]
    meta.index = pd.Index([str(i) for i in range(meta.shape[0])])
    counts = raw.iloc[first:].apply(pd.to_numeric).to_numpy(dtype=np.float32).T
    adata = AnnData(sp.csr_matrix(counts), obs=meta)
    id_col = next((c for c in meta.columns if c.lower() in ("cellid", "cell_id")), None)
    adata.obs_names = (meta[id_col] if id_col else pd.Series(range(counts.shape[0]))).astype(str).to_numpy()
    adata.var_names = raw.index[first:].astype(str).rename(None)
    adata.var_names_make_unique()
    return adata


def extract_member(archive: Path, suffix: str) -> bytes:
    """Bytes of the single member of a tar/zip archive whose name ends with ``suffix``."""
    import zipfile

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            hits = [n for n in z.namelist() if n.endswith(suffix)]
            if len(hits) != 1:
                raise ValueError(f"{archive}: expected one member ending with {suffix!r}, found {hits[:5]}")
            return z.read(hits[0])
    with tarfile.open(archive, "r:*") as tar:
        hits = [m for m in tar.getmembers() if m.name.endswith(suffix)]
        if len(hits) != 1:
            raise ValueError(f"{archive}: expected one member ending with {suffix!r}, "
                             f"found {[m.name for m in hits][:5]}")
        return tar.extractfile(hits[0]).read()
