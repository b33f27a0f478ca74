"""Dataset registry: download/cache/checksum round trip on small files made here, and readers."""
import gzip
import hashlib
import io
import tarfile

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

import datasets
from datasets import readers, sources
from datasets.registry import (ChecksumError, DatasetSpec, DatasetUnavailableError, RemoteFile,
                               registry)

PAPER = ["cortex", "pbmc_8k", "pbmc_68k", "pbmc_cite", "hemato", "retina", "brain_large",
         "marrow_tm_10x", "marrow_tm_ss2", "pancreas", "dentate_gyrus_10x", "dentate_gyrus_c1",
         "paul15", "purified_pbmc"]


def write_10x_tar(path, counts, genes, barcodes, folder="hg19"):
    """A CellRanger-2 style archive: <folder>/{matrix.mtx, genes.tsv, barcodes.tsv}."""
    def add(tar, name, data):
        info = tarfile.TarInfo(f"filtered_gene_bc_matrices/{folder}/{name}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    mtx = io.BytesIO()
    scipy.io.mmwrite(mtx, sp.coo_matrix(np.asarray(counts).T))
    with tarfile.open(path, "w:gz") as tar:
        add(tar, "matrix.mtx", mtx.getvalue())
        add(tar, "genes.tsv", "".join(f"ENSG{i}\t{g}\n" for i, g in enumerate(genes)).encode())
        add(tar, "barcodes.tsv", "".join(f"{b}\n" for b in barcodes).encode())


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A registered 'paper' dataset whose source is a local file:// URL."""
    src = tmp_path / "server" / "tiny.tar.gz"
    src.parent.mkdir()
    counts = np.array([[1, 0, 3], [0, 2, 0], [4, 1, 1], [0, 0, 5]])
    write_10x_tar(src, counts, ["A", "B", "A"], [f"bc{i}-1" for i in range(4)])

    def convert(paths):
        a = readers.read_10x_mtx_tar(paths["tiny.tar.gz"])
        a.obs["batch"] = "tiny"
        a.obs["cell_type"] = ["x", "y", "x", np.nan]
        return a

    def make(sha256=None, url=src.as_uri()):
        spec = DatasetSpec("tiny_test", "TINY", "test", files=(RemoteFile(url, "tiny.tar.gz", sha256),),
                           convert=convert, citation="me", license="MIT")
        monkeypatch.setitem(registry, "tiny_test", spec)
        return spec

    return src, make, tmp_path / "cache"


def test_round_trip_download_convert_cache(tiny):
    src, make, cache = tiny
    make(sha256=sha(src))
    a = datasets.load("tiny_test", cache_dir=cache)
    assert a.shape == (4, 3) and a.X.format == "csr"
    assert list(a.var_names) == ["A", "B", "A-1"] and list(a.var["gene_ids"]) == ["ENSG0", "ENSG1", "ENSG2"]
    np.testing.assert_array_equal(a.X.toarray()[2], [4, 1, 1])
    assert a.uns["source"]["name"] == "tiny_test" and src.as_uri() in a.uns["source"]["url"]
    assert sha(src) in a.uns["source"]["sha256"]
    raw = cache / "raw" / "tiny_test" / "tiny.tar.gz"
    assert raw.exists() and (cache / "processed" / "tiny_test.h5ad").exists()
    # the converted cache is used from now on, even without the raw file or the server
    raw.unlink()
    src.unlink()
    b = datasets.load("tiny_test", cache_dir=cache)
    assert (b.X != a.X).nnz == 0 and b.obs["cell_type"].isna().sum() == 1
    assert datasets.list_datasets(cache).set_index("name").loc["tiny_test", "available_locally"]


def test_published_checksum_mismatch(tiny):
    _, make, cache = tiny
    make(sha256="0" * 64)
    with pytest.raises(ChecksumError, match="does not match the expected 0000.*published"):
        datasets.load("tiny_test", cache_dir=cache)


def test_recorded_checksum_guards_later_use(tiny):
    src, make, cache = tiny
    make(sha256=None)
    datasets.load("tiny_test", cache_dir=cache)
    record = cache / "raw" / "tiny_test" / "tiny.tar.gz.sha256"
    assert record.read_text().split()[0] == sha(src)
    (cache / "processed" / "tiny_test.h5ad").unlink()
    (cache / "raw" / "tiny_test" / "tiny.tar.gz").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="recorded at first download"):
        datasets.load("tiny_test", cache_dir=cache)


def test_offline_message_says_where_to_put_the_file(tiny, monkeypatch):
    src, make, cache = tiny
    make(url="http://127.0.0.1:9/tiny.tar.gz")  # nothing listens on the discard port
    monkeypatch.setenv("HARMONIZATION_BENCH_CACHE", str(cache))
    expected = cache / "raw" / "tiny_test" / "tiny.tar.gz"
    with pytest.raises(DatasetUnavailableError) as e:
        datasets.load("tiny_test")  # cache root from the environment variable
    assert "http://127.0.0.1:9/tiny.tar.gz" in str(e.value) and str(expected) in str(e.value)
    # following the message works
    expected.write_bytes(src.read_bytes())
    assert datasets.load("tiny_test").n_obs == 4


def test_unknown_name_and_options():
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        datasets.load("nope")
    with pytest.raises(TypeError, match="takes no options"):
        datasets.load("pbmc3k", n_cells=3)


def test_simulated_is_the_builtin_default():
    a = datasets.load("simulated", n_cells=200, n_genes=80, seed=1)
    assert a.shape == (200, 80) and a.uns["source"]["name"] == "simulated"


def test_every_paper_dataset_registered_with_a_real_source():
    for name in PAPER:
        spec = registry[name]
        assert spec.kind == "paper" and spec.files and spec.citation and spec.license
        for f in spec.files:
            assert f.url.startswith(("http://", "https://")) and f.filename
            assert f.sha256 is None or len(f.sha256) == 64
    table = datasets.describe()
    assert {"name", "kind", "paper_dataset", "n_cells", "n_batches", "has_labels",
            "available_locally"} <= set(table.columns)
    assert set(PAPER) | {"simulated"} <= set(table["name"])


# -- readers and converters on tiny files in the published formats -------------------------

def test_loom_reader_and_retina_converter(tmp_path):
    path = tmp_path / "retina.loom"
    with h5py.File(path, "w") as f:
        f["matrix"] = np.array([[1, 0, 2], [0, 3, 1]], dtype=np.float32)  # genes x cells
        f["row_attrs/Gene"] = np.array([b"Rho", b"Opn1"])
        f["col_attrs/ClusterID"] = np.array([0, 2, 14])
        f["col_attrs/BatchID"] = np.array([1, 1, 2])
    a = sources._retina({"retina.loom": path})
    datasets.validate(a, need_batches=2, need_labels=True)
    assert list(a.obs["cell_type"]) == ["RBC", "BC5A", "BC8_9"]
    np.testing.assert_array_equal(a.X.toarray(), [[1, 0], [0, 3], [2, 1]])


def test_linnarsson_table_and_dentate_converter(tmp_path):
    text = ("cellid\tc1\tc2\tc3\n"
            "cluster_name\tGranule\tAstro\tGranule\n"
            "age(days)\t35\t35\t12\n"
            "Prox1\t5\t0\t2.6\n"
            "Gfap\t0\t7\t0\n")
    path = tmp_path / "GSE95752_C1_expression_data.tab.gz"
    path.write_bytes(gzip.compress(text.encode()))
    a = sources._dentate({path.name: path}, path.name, "DentateGyrus-C1")
    datasets.validate(a, need_labels=True)
    assert list(a.obs_names) == ["c1", "c2", "c3"] and list(a.var_names) == ["Prox1", "Gfap"]
    np.testing.assert_array_equal(a.X.toarray(), [[5, 0], [0, 7], [2, 0]])  # C1: floored
    assert list(a.obs["cell_type"]) == ["Granule", "Astro", "Granule"]


def test_10x_h5_reader(tmp_path):
    path = tmp_path / "x.h5"
    X = sp.csc_matrix(np.array([[1, 0], [0, 2], [3, 0]], dtype=np.int32))  # genes x cells
    with h5py.File(path, "w") as f:
        g = f.create_group("mm10")
        for k, v in dict(data=X.data, indices=X.indices, indptr=X.indptr, shape=np.array(X.shape),
                         genes=np.array([b"E1", b"E2", b"E3"]), gene_names=np.array([b"a", b"b", b"a"]),
                         barcodes=np.array([b"AC-1", b"GT-1"])).items():
            g[k] = v
    a = readers.read_10x_h5(path)
    assert list(a.obs_names) == ["AC-1", "GT-1"] and list(a.var_names) == ["a", "b", "a-1"]
    np.testing.assert_array_equal(a.X.toarray(), [[1, 0, 3], [0, 2, 0]])
    sub = readers.read_10x_h5(path, genes=np.array([1]))
    assert list(sub.var_names) == ["b"]


def test_pbmc68k_converter_joins_labels_by_barcode(tmp_path):
    tar = tmp_path / "fresh_68k_pbmc_donor_a_filtered_gene_bc_matrices.tar.gz"
    write_10x_tar(tar, [[1, 2], [3, 0], [0, 5]], ["CD3E", "MS4A1"], ["AAA-1", "CCC-1", "GGG-1"])
    ann = tmp_path / "68k_pbmc_barcodes_annotation.tsv"
    pd.DataFrame({"TSNE.1": [0, 0, 0], "TSNE.2": [0, 0, 0], "barcodes": ["GGG-1", "AAA-1", "CCC-1"],
                  "celltype": ["CD19+ B", "CD8+ Cytotoxic T", "CD14+ Monocyte"]}).to_csv(ann, sep="\t", index=False)
    a = sources._pbmc68k({tar.name: tar, ann.name: ann})
    datasets.validate(a, need_labels=True, need_hierarchy=True)
    assert list(a.obs["cell_type"]) == ["CD8+ Cytotoxic T", "CD14+ Monocyte", "CD19+ B"]
    assert list(a.obs["cell_type_coarse"]) == ["T cell", "Monocyte", "B cell"]


def test_paul15_converter(tmp_path):
    path = tmp_path / "paul15.h5"
    with h5py.File(path, "w") as f:
        f["data.debatched"] = np.array([[1.0, 0.0, 2.0], [3.0, 1.0, 0.0]])  # genes x cells
        f["data.debatched_rownames"] = np.array([b"Gata1;Gata1b", b"Mpo"])
        f["data.debatched_colnames"] = np.array([b"W1", b"W2", b"W3"])
        f["cluster.id"] = np.array([[1], [9], [19]])
    a = sources._paul15({"paul15.h5": path})
    datasets.validate(a, need_labels=True, need_hierarchy=True)
    assert list(a.var_names) == ["Gata1", "Mpo"]
    assert list(a.obs["cell_type"]) == ["Ery", "GMP", "Lymph"]
    assert a.uns["hierarchy"]["GMP"] == "Myeloid"


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_pancreas_converter_reads_the_scanorama_layout(tmp_path):
    members, labels = {}, []
    for k, prefix in enumerate(sources.PANCREAS_PARTS):
        table = f"gene\tcellA{k}\tcellB{k}\nINS\t{k + 1}\t0\nGCG\t0\t{k + 2}.4\n".encode()
        name = f"data/pancreas/{prefix}.txt" + (".gz" if k == 0 else "")
        members[name] = gzip.compress(table) if k == 0 else table
        labels += ["beta", "alpha"]
    members["data/cell_labels/pancreas_cluster.txt"] = "\n".join(labels).encode()
    members["data/pancreas/pancreas_inDrop_table.txt"] = b"ignored\n"
    path = tmp_path / "data.tar.gz"
    _tar(path, members)
    a = sources._pancreas({"data.tar.gz": path})
    datasets.validate(a, need_batches=5, need_labels=True)
    assert list(a.obs["batch"].cat.categories) == sorted(sources.PANCREAS_PARTS.values())
    assert a.obs_names[0] == "inDrop:cellA0" and list(a.var_names) == ["INS", "GCG"]
    assert list(a.obs["cell_type"][:2]) == ["beta", "alpha"]
    assert a.X[1, 1] == 2 and "rounded" in a.uns["processing"]  # 2.4 -> 2


def test_pbmc_cite_converter_attaches_adt_by_barcode(tmp_path):
    rna = tmp_path / "GSE100866_PBMC_vs_flow_10X-RNA_umi.csv.gz"
    adt = tmp_path / "GSE100866_PBMC_vs_flow_10X-ADT_umi.csv.gz"
    rna.write_bytes(gzip.compress(b",AAA,CCC\nHUMAN_CD3E,3,0\nHUMAN_CD19,0,4\nMOUSE_Actb,1,1\n"))
    adt.write_bytes(gzip.compress(b",CCC,AAA\nCD3,5,90\nCD19,70,2\n"))
    a = sources._pbmc_cite({rna.name: rna, adt.name: adt})
    datasets.validate(a, need_protein=True)
    assert list(a.var_names) == ["CD3E", "CD19"]
    assert a.obsm["protein"].loc["AAA", "CD3"] == 90 and a.obsm["protein"].loc["CCC", "CD19"] == 70
    assert a.obs["cell_type"].isna().all()


def test_hemato_converter_uses_potential_as_pseudotime(tmp_path):
    counts = tmp_path / "bBM.raw_umifm_counts.csv.gz"
    counts.write_bytes(gzip.compress(
        b"cell_id,library_id,Gata1,Mpo,Junk\nc1,basal_bm1,5,5,5\nc2,basal_bm2,3,0,1\nc3,basal_bm2,0,4,1\n"))
    zpath = tmp_path / "data.zip"
    import zipfile
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("HEMATO/bBM.spring_and_pba.csv", "cell_id,Potential,Pr_Er,Pr_Gr\nc2,0.9,0.8,0.1\nc3,0.2,0.1,0.7\n")
        z.writestr("HEMATO/bBM.filtered_gene_list.paper.txt", "Gata1\nMpo\n")
    a = sources._hemato({counts.name: counts, "data.zip": zpath})
    datasets.validate(a, need_pseudotime=True)
    assert list(a.var_names) == ["Gata1", "Mpo"] and a.n_obs == 2  # basal_bm1 dropped
    np.testing.assert_array_equal(a.obs["pseudotime"], [0.9, 0.2])
    np.testing.assert_array_equal(a.X.toarray(), [[3, 0], [0, 4]])


def test_tabula_muris_ss2_converter_length_normalises_marrow(tmp_path):
    X = sp.csr_matrix(np.array([[300, 100, 9], [10, 10, 10], [400, 200, 1]], dtype=np.float32))
    mat = ad.AnnData(X, obs=pd.DataFrame(index=["m1", "l1", "m2"]),
                     var=pd.DataFrame(index=["Cd19", "Ptprc", "NoLength"]))
    mat.write_h5ad(tmp_path / "TM_facs_mat.h5ad")
    pd.DataFrame({"cell": ["m1", "l1", "m2"], "tissue": ["Marrow", "Liver", "Marrow"],
                  "cell_ontology_class": ["B cell", "hepatocyte", "T cell"]}).to_csv(
        tmp_path / "TM_facs_metadata.csv", index=False)
    (tmp_path / "gene_len.txt").write_text("Cd19 1000\nPtprc 3000\n")
    paths = {n: tmp_path / n for n in ("TM_facs_mat.h5ad", "TM_facs_metadata.csv", "gene_len.txt")}
    a = sources._tabula_muris(paths, "facs")
    datasets.validate(a, need_labels=True)
    # relative lengths 0.5 and 1.5; cells with <= 100 counts after normalisation dropped
    assert list(a.obs_names) == ["m1", "m2"] and list(a.var_names) == ["Cd19", "Ptprc"]
    np.testing.assert_array_equal(a.X.toarray(), [[600, 66], [800, 133]])
    assert list(a.obs["cell_type"]) == ["B cell", "T cell"]


def test_pbmc8k_converter_labels_only_unambiguous_barcodes(tmp_path):
    import pickle

    tar = tmp_path / "pbmc8k_filtered_gene_bc_matrices.tar.gz"
    write_10x_tar(tar, [[1, 2], [3, 0], [0, 5]], ["CD3E", "MS4A1"], ["AAA-1", "CCC-1", "GGG-1"],
                  folder="GRCh38")
    meta = {"barcodes": pd.DataFrame(index=["AAA-1", "CCC-1", "CCC-1", "TTT-1"]),
            "clusters": np.array([0, 1, 0, 1]), "list_clusters": np.array(["T", "B"])}
    pkl = tmp_path / "pbmc_metadata.pickle"
    pkl.write_bytes(pickle.dumps(meta))
    a = sources._pbmc8k({tar.name: tar, pkl.name: pkl})
    datasets.validate(a, need_labels=True)
    assert list(a.obs_names) == ["AAA-1"] and list(a.obs["cell_type"]) == ["T"]


def test_write_h5ad_writes_pandas_string_arrays_and_restores_the_setting(tmp_path):
    """pandas 3 makes every string column a string array, which anndata writes only on request:
    datasets.write_h5ad asks for it (the processed-data cache and the benchmark scripts use it)."""
    import anndata
    import numpy as np
    import pandas as pd

    from datasets import write_h5ad

    obs = pd.DataFrame({"cell_type": pd.array(["T", "B", "T"], dtype="string")}, index=["c0", "c1", "c2"])
    adata = anndata.AnnData(np.ones((3, 2), dtype=np.float32), obs=obs)
    before = getattr(anndata.settings, "allow_write_nullable_strings", None)
    write_h5ad(adata, tmp_path / "a.h5ad")
    assert anndata.read_h5ad(tmp_path / "a.h5ad").obs["cell_type"].astype(str).tolist() == ["T", "B", "T"]
    assert getattr(anndata.settings, "allow_write_nullable_strings", None) == before
