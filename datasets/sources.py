"""The registered datasets: the paper's (real public sources), the shared stand-ins, the simulator.

Paper datasets follow the scANVI paper's Supplementary Table 1 and the loaders of its
code (chenlingantelope/HarmonizationSCANVI) and of scVI (``scvi/data/_built_in_data``),
from which the URLs are taken. No checksum below is invented: ``sha256=None`` means none
is published, and the first download's digest is recorded in the cache (registry docs).

The converters were exercised on small files of the same formats (tests); the full
files are large (up to GBs) and were not downloadable on the build machine, so the first
real conversion of each is also the first check of its layout assumptions: each
converter raises a clear error naming the file when a column or member it expects is
missing.
"""
from __future__ import annotations

import gzip
import io
import pickle
import tarfile

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from . import readers
from .contract import DataContractError
from .preprocessing import smartseq2_length_normalize
from .registry import DatasetSpec, RemoteFile, register, shared_data_dir
from .simulate import simulate

GEO = "https://www.ncbi.nlm.nih.gov/geo/download/?acc={acc}&format=file&file={file}"
TENX = "http://cf.10xgenomics.com/samples/cell-exp"
SCVI_DATA = "https://github.com/YosefLab/scVI-data/raw/master"


def _need(df: pd.DataFrame, cols, where: str):
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataContractError(f"{where}: expected columns {missing} not found "
                                f"(has {list(df.columns)[:10]}); the source layout changed")


def _finish(adata: AnnData, batch: str, labels=None, coarse_map: dict | None = None) -> AnnData:
    """Set batch/labels/hierarchy and drop cells without counts."""
    adata.obs["batch"] = pd.Categorical([batch] * adata.n_obs) if isinstance(batch, str) else batch
    if labels is not None:
        lab = pd.Series(np.asarray(labels, dtype=object), index=adata.obs_names)
        lab = lab.where(~lab.astype(str).isin(["nan", "NaN", "", "unknown", "Unknown", "NA"]))
        adata.obs["cell_type"] = pd.Categorical(lab)
    if coarse_map is not None:
        present = set(adata.obs["cell_type"].dropna().astype(str))
        adata.uns["hierarchy"] = {k: v for k, v in coarse_map.items() if k in present}
    keep = np.asarray(adata.X.sum(axis=1)).ravel() > 0
    return adata[keep].copy() if not keep.all() else adata


def _round_counts(adata: AnnData, why: str) -> AnnData:
    """Round non-integer 'counts' (e.g. UMI-corrected estimates) and record that."""
    X = sp.csr_matrix(adata.X)
    if X.nnz and not np.all(X.data == np.round(X.data)):
        X.data = np.round(X.data)
        X.eliminate_zeros()
        adata.X = X
        adata.uns["processing"] = f"non-integer values rounded: {why}"
    return adata


# -- paper datasets ---------------------------------------------------------------------

def _cortex(paths):
    a = readers.read_loom(paths["l5_all.loom"], block=1024)
    _need(a.obs, ["TaxonomyRank4", "TaxonomyRank3", "TaxonomyRank2"], "l5_all.loom col_attrs")
    # coarse level as the paper's code: Rank3, with every CNS neuron merged (HarmonizationSCANVI)
    coarse = a.obs["TaxonomyRank3"].astype(str).where(
        a.obs["TaxonomyRank2"].astype(str) != "CNS neurons", "CNS neurons")
    fine = a.obs["TaxonomyRank4"].astype(str)
    a.obs["cell_type_coarse"] = pd.Categorical(coarse)
    return _finish(a, "zeisel2018", fine, dict(zip(fine, coarse)))


def _pbmc8k(paths):
    a = readers.read_10x_mtx_tar(paths["pbmc8k_filtered_gene_bc_matrices.tar.gz"])
    with open(paths["pbmc_metadata.pickle"], "rb") as f:
        meta = pickle.load(f)
    for k in ("barcodes", "clusters", "list_clusters"):
        if k not in meta:
            raise DataContractError(f"pbmc_metadata.pickle: key {k!r} missing (has {list(meta)})")
    barcodes = np.asarray(meta["barcodes"].index if hasattr(meta["barcodes"], "index")
                          else meta["barcodes"]).astype(str).ravel()
    names = np.asarray(meta["list_clusters"]).astype(str)
    labels = names[np.asarray(meta["clusters"]).astype(int).ravel()]
    # the metadata covers PBMC-8K and PBMC-4K with bare barcodes: a barcode present twice
    # cannot be attributed, so only unambiguous barcodes are labelled
    table = pd.Series(labels, index=barcodes)
    table = table[~table.index.duplicated(keep=False)]
    a = a[a.obs_names.isin(table.index)].copy()
    return _finish(a, "PBMC-8K", table.loc[a.obs_names].to_numpy())


ZHENG68K_COARSE = {
    "CD8+ Cytotoxic T": "T cell", "CD8+/CD45RA+ Naive Cytotoxic": "T cell",
    "CD4+/CD45RO+ Memory": "T cell", "CD4+/CD25 T Reg": "T cell", "CD4+ T Helper2": "T cell",
    "CD4+/CD45RA+/CD25- Naive T": "T cell", "CD19+ B": "B cell", "CD56+ NK": "NK cell",
    "CD34+": "CD34+ progenitor", "Dendritic": "Dendritic cell", "CD14+ Monocyte": "Monocyte",
}


def _pbmc68k(paths):
    a = readers.read_10x_mtx_tar(paths["fresh_68k_pbmc_donor_a_filtered_gene_bc_matrices.tar.gz"])
    ann = pd.read_csv(paths["68k_pbmc_barcodes_annotation.tsv"], sep="\t")
    _need(ann, ["barcodes", "celltype"], "68k_pbmc_barcodes_annotation.tsv")
    lab = ann.set_index("barcodes")["celltype"].reindex(a.obs_names)
    a.obs["cell_type_coarse"] = pd.Categorical(lab.map(ZHENG68K_COARSE))
    return _finish(a, "PBMC-68K", lab.to_numpy(), ZHENG68K_COARSE)


def _pbmc_cite(paths):
    rna = readers.read_dense_table(paths["GSE100866_PBMC_vs_flow_10X-RNA_umi.csv.gz"])
    adt = pd.read_csv(paths["GSE100866_PBMC_vs_flow_10X-ADT_umi.csv.gz"], index_col=0).T
    human = rna.var_names.str.startswith("HUMAN_")
    if human.any():  # species-mixing runs prefix genes; keep the human ones, as scVI did
        rna = rna[:, human].copy()
        rna.var_names = rna.var_names.str.replace("HUMAN_", "", regex=False)
        rna.var_names_make_unique()
    missing = rna.obs_names.difference(adt.index)
    if len(missing):
        raise DataContractError(f"ADT table lacks {len(missing)} RNA barcodes")
    rna.obsm["protein"] = adt.loc[rna.obs_names].astype(np.float32)
    return _finish(rna, "PBMC-CITE", None)


def _hemato(paths):
    counts = pd.read_csv(paths["bBM.raw_umifm_counts.csv.gz"])
    spring = pd.read_csv(io.BytesIO(readers.extract_member(paths["data.zip"], "bBM.spring_and_pba.csv")))
    genes = np.loadtxt(io.BytesIO(readers.extract_member(paths["data.zip"],
                                                        "bBM.filtered_gene_list.paper.txt")), dtype=str)
    _need(counts, ["library_id"], "bBM.raw_umifm_counts.csv.gz")
    _need(spring, ["Potential"], "bBM.spring_and_pba.csv")
    # basal_bm1 is of poor quality per the authors (scVI's loader drops it too)
    counts = counts[counts["library_id"] != "basal_bm1"]
    data = counts.merge(spring, how="inner")
    a = AnnData(sp.csr_matrix(data[list(genes)].to_numpy(dtype=np.float32)))
    a.var_names = list(genes)
    a.obs_names = [f"cell{i}" for i in range(a.n_obs)]
    a.obs["pseudotime"] = data["Potential"].to_numpy(dtype=float)
    for c in [c for c in data.columns if c.startswith("Pr_")]:
        a.obs[c] = data[c].to_numpy(dtype=float)
    return _finish(a, "HEMATO-Tusi", None)


RETINA_TYPES = ["RBC", "MG", "BC5A", "BC7", "BC6", "BC5C", "BC1A", "BC3B", "BC1B", "BC2", "BC5D",
                "BC3A", "BC5B", "BC4", "BC8_9"]


def _retina(paths):
    a = readers.read_loom(paths["retina.loom"])
    _need(a.obs, ["ClusterID", "BatchID"], "retina.loom col_attrs")
    labels = [RETINA_TYPES[int(i)] for i in np.asarray(a.obs["ClusterID"]).ravel()]
    batch = pd.Categorical(np.asarray(a.obs["BatchID"]).astype(int).astype(str))
    return _finish(a, batch, labels)


def _brain_large(paths, n_genes: int = 720, n_cells_for_var: int = 10_000, block: int = 100_000):
    """scVI's BRAIN-LARGE: top ``n_genes`` by variance over the first 10,000 cells, all cells."""
    import h5py

    with h5py.File(paths["1M_neurons_filtered_gene_bc_matrices_h5.h5"], "r") as f:
        g = f["mm10"]
        n_all_genes, n_cells = (int(v) for v in g["shape"][()])
        indptr = g["indptr"][()]

        def cells(lo, hi):
            a, b = indptr[lo], indptr[hi]
            return sp.csr_matrix((g["data"][a:b].astype(np.float32), g["indices"][a:b],
                                  indptr[lo:hi + 1] - a), shape=(hi - lo, n_all_genes))

        head = cells(0, min(n_cells_for_var, n_cells))
        mean = np.asarray(head.mean(axis=0)).ravel()
        var = np.asarray(head.multiply(head).mean(axis=0)).ravel() - mean**2
        keep = np.sort(np.argsort(-var)[:n_genes])
        X = sp.vstack([cells(s, min(s + block, n_cells))[:, keep]
                       for s in range(0, n_cells, block)], format="csr")
        symbols = [readers._text(v) for v in g["gene_names"][()]]
        ids = [readers._text(v) for v in g["genes"][()]]
        barcodes = [readers._text(v) for v in g["barcodes"][()]]
    a = AnnData(X)
    a.obs_names = barcodes
    a.var_names = [symbols[i] for i in keep]
    a.var["gene_ids"] = [ids[i] for i in keep]
    a.var_names_make_unique()
    return _finish(a, "BRAIN-LARGE", None)


def _tabula_muris(paths, which: str):
    import anndata

    mat, meta_file = {"droplet": ("TM_droplet_mat.h5ad", "TM_droplet_metadata.csv"),
                      "facs": ("TM_facs_mat.h5ad", "TM_facs_metadata.csv")}[which]
    a = anndata.read_h5ad(paths[mat])
    meta = pd.read_csv(paths[meta_file], low_memory=False)
    _need(meta, ["tissue", "cell_ontology_class"], meta_file)
    if len(meta) != a.n_obs:
        raise DataContractError(f"{meta_file}: {len(meta)} rows for {a.n_obs} cells in {mat}")
    marrow = (meta["tissue"] == "Marrow").to_numpy()
    a, meta = a[marrow].copy(), meta[marrow]
    labels = meta["cell_ontology_class"].to_numpy()
    if which == "facs":
        # paper, "Normalization of SmartSeq2 data", with the authors' gene lengths
        lengths = pd.read_csv(paths["gene_len.txt"], sep=" ", header=None, index_col=0).iloc[:, 0]
        a = a[:, a.var_names.isin(lengths.index)].copy()
        a.X = smartseq2_length_normalize(a, lengths)
        keep = np.asarray(a.X.sum(axis=1)).ravel() > 100  # the authors' cell filter
        a, labels = a[keep].copy(), labels[keep]
    return _finish(a, "MarrowTM-ss2" if which == "facs" else "MarrowTM-10x", labels)


PANCREAS_PARTS = {  # scanorama data/pancreas/<prefix>: technology (batch)
    "pancreas_inDrop": "inDrop",
    "pancreas_multi_celseq2_expression_matrix": "CEL-Seq2",
    "pancreas_multi_celseq_expression_matrix": "CEL-Seq",
    "pancreas_multi_fluidigmc1_expression_matrix": "Fluidigm C1",
    "pancreas_multi_smartseq2_expression_matrix": "Smart-Seq2",
}


def _pancreas(paths):
    import anndata

    parts, labels = [], None
    with tarfile.open(paths["data.tar.gz"], "r:*") as tar:
        for m in tar:
            if m.name.endswith("cell_labels/pancreas_cluster.txt"):
                labels = tar.extractfile(m).read().decode().split()
                continue
            for prefix, tech in PANCREAS_PARTS.items():
                stem = m.name.split("pancreas/")[-1]
                if "/pancreas/" in m.name and stem in (prefix + ".txt", prefix + ".txt.gz"):
                    raw = tar.extractfile(m).read()
                    raw = gzip.decompress(raw) if stem.endswith(".gz") else raw
                    a = readers.read_dense_table(io.BytesIO(raw), sep="\t")
                    a.obs["batch"] = tech
                    parts.append((list(PANCREAS_PARTS).index(prefix), a))
    if len(parts) != len(PANCREAS_PARTS) or labels is None:
        raise DataContractError("data.tar.gz: expected the 5 scanorama pancreas tables and "
                                "data/cell_labels/pancreas_cluster.txt")
    parts = [a for _, a in sorted(parts, key=lambda t: t[0])]
    for a, tech in zip(parts, PANCREAS_PARTS.values()):
        a.obs_names = [f"{tech}:{c}" for c in a.obs_names]
    a = anndata.concat(parts, join="inner")
    if len(labels) != a.n_obs:
        raise DataContractError(f"pancreas_cluster.txt: {len(labels)} labels for {a.n_obs} cells")
    a = _round_counts(a, "CEL-Seq/CEL-Seq2 tables hold UMI-corrected estimates")
    return _finish(a, pd.Categorical(a.obs["batch"].astype(str)), labels)


def _dentate(paths, fname: str, batch: str):
    a = readers.read_table_with_header_rows(paths[fname])
    _need(a.obs, ["cluster_name"], fname)
    if batch.endswith("C1"):
        a.X = sp.csr_matrix(np.floor(a.X.toarray()))  # as the authors' loader (C1 values)
    return _finish(a, batch, a.obs["cluster_name"].to_numpy())


PAUL15_TYPES = 6 * ["Ery"] + "MEP Mk GMP GMP DC Baso Baso Mo Mo Neu Neu Eos Lymph".split()
PAUL15_COARSE = {"Ery": "Erythroid", "MEP": "Erythroid", "Mk": "Erythroid", "GMP": "Myeloid",
                 "DC": "Myeloid", "Baso": "Myeloid", "Mo": "Myeloid", "Neu": "Myeloid",
                 "Eos": "Myeloid", "Lymph": "Lymphoid"}


def _paul15(paths):
    import h5py

    with h5py.File(paths["paul15.h5"], "r") as f:
        x = f["data.debatched"][()].astype(np.float32)
        genes = [readers._text(v).split(";")[0] for v in f["data.debatched_rownames"][()]]
        cells = [readers._text(v) for v in f["data.debatched_colnames"][()]]
        clusters = f["cluster.id"][()].ravel().astype(int)
    a = AnnData(sp.csr_matrix(x.T))
    a.var_names, a.obs_names = genes, cells
    a.var_names_make_unique()
    a.obs["paul15_cluster"] = clusters
    a = _round_counts(a, "the published 'debatched' MARS-seq matrix")
    fine = [PAUL15_TYPES[i - 1] for i in clusters]
    a.obs["cell_type_coarse"] = pd.Categorical([PAUL15_COARSE[t] for t in fine])
    return _finish(a, "HEMATO-Paul", fine, PAUL15_COARSE)


PURIFIED_COARSE = {
    "cd4_t_helper": "T cell", "regulatory_t": "T cell", "naive_t": "T cell", "memory_t": "T cell",
    "cytotoxic_t": "T cell", "naive_cytotoxic": "T cell", "b_cells": "B cell",
    "cd34": "CD34+ progenitor", "cd56_nk": "NK cell", "cd14_monocytes": "Monocyte",
}


def _purified_pbmc(paths):
    import anndata

    a = anndata.read_h5ad(paths["PurifiedPBMCDataset.h5ad"])
    _need(a.obs, ["cell_types"], "PurifiedPBMCDataset.h5ad obs")
    fine = a.obs["cell_types"].astype(str).to_numpy()
    a.obs = a.obs[[]]
    a.obs["cell_type_coarse"] = pd.Categorical([PURIFIED_COARSE.get(t, np.nan) for t in fine])
    return _finish(a, "PBMC-Sorted", fine, PURIFIED_COARSE)


def _f(url, filename, sha256=None, size=None):
    return RemoteFile(url=url, filename=filename, sha256=sha256, size=size)


ZHENG = "Zheng et al. 2017, Massively parallel digital transcriptional profiling of single cells, Nat Commun 8:14049"
TM = "Tabula Muris Consortium 2018, Single-cell transcriptomics of 20 mouse organs, Nature 562:367"
HOCHGERNER = ("Hochgerner et al. 2018, Conserved properties of dentate gyrus neurogenesis across "
              "postnatal development revealed by single-cell RNA sequencing, Nat Neurosci 21:290")
PAPER_SPECS = [
    DatasetSpec(
        "cortex", "CORTEX", "Mouse nervous system atlas, 160,796 cells (mousebrain.org level 5)",
        files=(_f("https://storage.googleapis.com/linnarsson-lab-loom/l5_all.loom", "l5_all.loom"),),
        convert=_cortex, n_cells=160_796, n_batches=1,
        citation="Zeisel et al. 2018, Molecular architecture of the mouse nervous system, Cell 174:999",
        license="public download, mousebrain.org (no licence stated)"),
    DatasetSpec(
        "pbmc_8k", "PBMC-8K", "10x PBMCs of a healthy donor; labels from scVI's PBMC metadata",
        files=(_f(f"{TENX}/2.1.0/pbmc8k/pbmc8k_filtered_gene_bc_matrices.tar.gz",
                  "pbmc8k_filtered_gene_bc_matrices.tar.gz"),
               _f(f"{SCVI_DATA}/pbmc_metadata.pickle", "pbmc_metadata.pickle")),
        convert=_pbmc8k, n_cells=8_381, n_batches=1,
        citation="10x Genomics pbmc8k (CellRanger 2.1.0); labels: Lopez et al. 2018 (scVI)",
        license="CC-BY-4.0 (10x Genomics)"),
    DatasetSpec(
        "pbmc_68k", "PBMC-68K", "68k fresh PBMCs of donor A with the published cluster annotation",
        files=(_f(f"{TENX}/1.1.0/fresh_68k_pbmc_donor_a/fresh_68k_pbmc_donor_a_filtered_gene_bc_matrices.tar.gz",
                  "fresh_68k_pbmc_donor_a_filtered_gene_bc_matrices.tar.gz"),
               _f("https://raw.githubusercontent.com/10XGenomics/single-cell-3prime-paper/master/"
                  "pbmc68k_analysis/68k_pbmc_barcodes_annotation.tsv",
                  "68k_pbmc_barcodes_annotation.tsv")),
        convert=_pbmc68k, n_cells=68_579, n_batches=1, citation=ZHENG, license="CC-BY-4.0 (10x Genomics)"),
    DatasetSpec(
        "pbmc_cite", "PBMC-CITE", "CITE-seq PBMCs with ADT counts (GEO GSE100866, PBMC vs flow)",
        files=(_f("https://ftp.ncbi.nlm.nih.gov/geo/series/GSE100nnn/GSE100866/suppl/"
                  "GSE100866_PBMC_vs_flow_10X-RNA_umi.csv.gz", "GSE100866_PBMC_vs_flow_10X-RNA_umi.csv.gz"),
               _f("https://ftp.ncbi.nlm.nih.gov/geo/series/GSE100nnn/GSE100866/suppl/"
                  "GSE100866_PBMC_vs_flow_10X-ADT_umi.csv.gz", "GSE100866_PBMC_vs_flow_10X-ADT_umi.csv.gz")),
        convert=_pbmc_cite, n_cells=7_667, n_batches=1, has_labels=False,
        citation="Stoeckius et al. 2017, Simultaneous epitope and transcriptome measurement in single cells, Nat Methods 14:865",
        license="GEO public data",
        notes="the paper's manual labels are not published; cell_type is NaN"),
    DatasetSpec(
        "hemato", "HEMATO-Tusi", "Mouse hematopoietic progenitors (inDrop) with the PBA potential as pseudotime",
        files=(_f(GEO.format(acc="GSM2388072", file="GSM2388072%5Fbasal%5Fbone%5Fmarrow%2Eraw%5Fumifm%5Fcounts%2Ecsv%2Egz"),
                  "bBM.raw_umifm_counts.csv.gz"),
               _f("https://github.com/romain-lopez/scVI-reproducibility/raw/master/additional/data.zip",
                  "data.zip")),
        convert=_hemato, n_cells=4_016, n_batches=1, has_labels=False,
        citation="Tusi et al. 2018, Population snapshots predict early haematopoietic and erythroid hierarchies, Nature 555:54",
        license="GEO public data; scVI-reproducibility (MIT)"),
    DatasetSpec(
        "retina", "RETINA", "Mouse retinal bipolar cells, 2 batches, 15 types (scVI-data loom)",
        files=(_f(f"{SCVI_DATA}/retina.loom", "retina.loom"),),
        convert=_retina, n_cells=27_499, n_batches=2,
        citation="Shekhar et al. 2016, Comprehensive classification of retinal bipolar neurons by single-cell transcriptomics, Cell 166:1308",
        license="scVI-data (no licence file); GEO GSE81904"),
    DatasetSpec(
        "brain_large", "BRAIN-LARGE", "1.3 M mouse brain cells (10x), top 720 genes by variance as scVI",
        files=(_f(f"{TENX}/1.3.0/1M_neurons/1M_neurons_filtered_gene_bc_matrices_h5.h5",
                  "1M_neurons_filtered_gene_bc_matrices_h5.h5"),),
        convert=_brain_large, n_cells=1_306_127, n_batches=1, has_labels=False,
        citation="10x Genomics 1.3 Million Brain Cells from E18 Mice (CellRanger 1.3.0)",
        license="CC-BY-4.0 (10x Genomics)"),
    DatasetSpec(
        "marrow_tm_10x", "MarrowTM-10x", "Tabula Muris bone marrow, 10x droplet",
        files=(_f("https://s3.amazonaws.com/czbiohub-tabula-muris/TM_droplet_mat.h5ad", "TM_droplet_mat.h5ad"),
               _f("https://github.com/czbiohub/tabula-muris-vignettes/raw/master/data/TM_droplet_metadata.csv",
                  "TM_droplet_metadata.csv")),
        convert=lambda p: _tabula_muris(p, "droplet"), n_cells=4_112, n_batches=1,
        citation=TM, license="CC-BY-4.0 (Tabula Muris)"),
    DatasetSpec(
        "marrow_tm_ss2", "MarrowTM-ss2", "Tabula Muris bone marrow, Smart-Seq2 (FACS), length-normalised",
        files=(_f("https://s3.amazonaws.com/czbiohub-tabula-muris/TM_facs_mat.h5ad", "TM_facs_mat.h5ad"),
               _f("https://github.com/czbiohub/tabula-muris-vignettes/raw/master/data/TM_facs_metadata.csv",
                  "TM_facs_metadata.csv"),
               _f("https://github.com/chenlingantelope/HarmonizationSCANVI/raw/master/data/gene_len.txt",
                  "gene_len.txt")),
        convert=lambda p: _tabula_muris(p, "facs"), n_cells=5_351, n_batches=1,
        citation=TM, license="CC-BY-4.0 (Tabula Muris); gene lengths: HarmonizationSCANVI (MIT)"),
    DatasetSpec(
        "pancreas", "Pancreas (inDrop, CEL-Seq2, CEL-Seq, Fluidigm C1, Smart-Seq2)",
        "Human pancreas from five technologies as packaged by Scanorama, labels from its cell_labels",
        files=(_f("http://scanorama.csail.mit.edu/data.tar.gz", "data.tar.gz"),),
        convert=_pancreas, n_batches=5,
        citation=("Baron et al. 2016 (inDrop); Muraro et al. 2016 (CEL-Seq2); Grün et al. 2016 (CEL-Seq); "
                  "Lawlor et al. 2017 (Fluidigm C1); Segerstolpe et al. 2016 (Smart-Seq2); "
                  "packaged by Hie et al. 2019 (Scanorama)"),
        license="public data as redistributed by Scanorama (MIT code)",
        notes="about 4 GB archive; the paper paired inDrop with CEL-Seq2"),
    DatasetSpec(
        "dentate_gyrus_10x", "DentateGyrus-10x", "Mouse dentate gyrus, 10x (GEO GSE95315)",
        files=(_f(GEO.format(acc="GSE95315", file="GSE95315%5F10X%5Fexpression%5Fdata%5Fv2%2Etab%2Egz"),
                  "GSE95315_10X_expression_data_v2.tab.gz"),),
        convert=lambda p: _dentate(p, "GSE95315_10X_expression_data_v2.tab.gz", "DentateGyrus-10x"),
        n_cells=5_454, n_batches=1, citation=HOCHGERNER, license="GEO public data"),
    DatasetSpec(
        "dentate_gyrus_c1", "DentateGyrus-C1", "Mouse dentate gyrus, Fluidigm C1 (GEO GSE95752)",
        files=(_f(GEO.format(acc="GSE95752", file="GSE95752%5FC1%5Fexpression%5Fdata%2Etab%2Egz"),
                  "GSE95752_C1_expression_data.tab.gz"),),
        convert=lambda p: _dentate(p, "GSE95752_C1_expression_data.tab.gz", "DentateGyrus-C1"),
        n_cells=2_303, n_batches=1, citation=HOCHGERNER, license="GEO public data"),
    DatasetSpec(
        "paul15", "HEMATO-Paul", "Mouse myeloid progenitors, MARS-seq (Paul et al. 2015), scanpy's copy",
        files=(_f("https://falexwolf.de/data/paul15.h5", "paul15.h5"),),
        convert=_paul15, n_cells=2_730, n_batches=1,
        citation="Paul et al. 2015, Transcriptional heterogeneity and lineage commitment in myeloid progenitors, Cell 163:1663",
        license="GEO GSE72857 public data"),
    DatasetSpec(
        "purified_pbmc", "PBMC-Sorted", "Bead-purified PBMC populations of Zheng et al. (scVI-data)",
        files=(_f(f"{SCVI_DATA}/PurifiedPBMCDataset.h5ad", "PurifiedPBMCDataset.h5ad"),),
        convert=_purified_pbmc, n_cells=94_655, n_batches=1, citation=ZHENG,
        license="CC-BY-4.0 (10x Genomics)"),
]

#: shared stand-ins (MANIFEST.md): file stem -> (paper dataset it stands in for, has labels)
SHARED_STANDS_IN = {
    "pbmc_facs": ("PBMC-Sorted (Zheng purified PBMC)", True),
    "cellbench_mixology": ("multi-technology pairs (pancreas; MarrowTM 10x/ss2; dentate gyrus 10x/C1)", True),
    "cite_cbmc": ("PBMC-CITE", True),
    "cite_eccite_pbmc_small": ("PBMC-CITE", False),
    "pancreas_endocrinogenesis": ("HEMATO / Paul-Tusi (trajectory)", True),
    "paul15_tradeseq": ("HEMATO-Paul", True),
    "pbmc3k": ("PBMC-8K / PBMC-68K", True),
}


def _register_all():
    for spec in PAPER_SPECS:
        register(spec)
    names = dict(SHARED_STANDS_IN)
    folder = shared_data_dir()
    if folder.is_dir():  # files added later to the folder are registered too
        for p in sorted(folder.glob("*.h5ad")):
            names.setdefault(p.stem, (None, True))
    for stem, (stands_in, labels) in names.items():
        register(DatasetSpec(stem, stands_in or "", f"shared stand-in {stem}.h5ad (MANIFEST.md)",
                             kind="shared", shared_file=f"{stem}.h5ad", stands_in_for=stands_in,
                             has_labels=labels, citation="see the file's uns['source']",
                             license="see the file's uns['source']"))
    register(DatasetSpec("simulated", "", "built-in simulator (datasets.simulate); kwargs go to it",
                         kind="simulated", loader=simulate, n_batches=2,
                         citation="harmonization-bench", license="MIT"))


_register_all()
