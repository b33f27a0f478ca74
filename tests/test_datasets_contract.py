"""datasets.validate: every violation of the data contract with a real bad input."""
import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from datasets import DataContractError, attach_protein, validate
from datasets.contract import PLACEHOLDER_LABELS


def good(n=6, g=4, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(rng.poisson(2.0, (n, g)).astype(np.float32))
    obs = pd.DataFrame({"batch": pd.Categorical(["a", "b"] * (n // 2)),
                        "cell_type": pd.Categorical(["T", "B", "T", "NK", "B", "T"][:n])},
                       index=[f"c{i}" for i in range(n)])
    return ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(g)]))


def raises(adata, match, **kw):
    with pytest.raises(DataContractError, match=match) as e:
        validate(adata, **kw)
    return str(e.value)


def test_good_object_passes_and_is_returned():
    a = good()
    out = validate(a, need_batches=2, need_labels=True)
    assert out is a and out.X.format == "csr" and out.X.dtype == np.float32


@pytest.mark.parametrize("make", [np.asarray, sp.csc_matrix, sp.csc_array, sp.csr_array,
                                  lambda m: np.asarray(m).astype(np.int64)])
def test_dense_and_non_csr_X_are_converted(make):
    a = good()
    a.X = make(a.X.toarray())
    expected = np.asarray(a.X.toarray() if sp.issparse(a.X) else a.X)
    validate(a)
    assert isinstance(a.X, sp.csr_matrix) and a.X.dtype == np.float32
    np.testing.assert_array_equal(a.X.toarray(), expected)


def test_copy_leaves_input_alone():
    a = good()
    a.X = a.X.toarray()
    out = validate(a, copy=True)
    assert isinstance(a.X, np.ndarray) and sp.issparse(out.X)


def test_non_integer_counts():
    a = good()
    a.X = sp.csr_matrix(np.log1p(a.X.toarray()))
    msg = raises(a, r"X: non-integer values")
    assert "raw counts" in msg


def test_negative_counts():
    a = good()
    a.X[0, 0] = -3
    raises(a, r"X: 1 negative values")


def test_nan_counts():
    a = good()
    X = a.X.toarray()
    X[1, 2] = np.nan
    a.X = X
    raises(a, r"X: 1 NaN/inf values")


def test_empty_matrix():
    a = good()[:0].copy()
    raises(a, r"X: empty matrix \(0 cells")
    b = good()
    b.X = sp.csr_matrix(b.shape, dtype=np.float32)
    raises(b, r"X: empty matrix \(all counts are zero\)")


def test_missing_X():
    a = ad.AnnData(obs=pd.DataFrame({"batch": ["x"]}, index=["c0"]))
    raises(a, r"X: missing")


def test_duplicated_names():
    a = good()
    a.obs_names = ["c0"] * a.n_obs
    raises(a, r"obs_names: 1 duplicated names.*obs_names_make_unique")
    b = good()
    b.var_names = ["g0", "g0", "g1", "g2"]
    raises(b, r"var_names: 1 duplicated names.*var_names_make_unique")


def test_missing_names():
    a = good()
    a.var_names = ["g0", "", "g2", "g3"]
    raises(a, r"var_names: 1 missing/empty names")


def test_missing_batch():
    a = good()
    del a.obs["batch"]
    raises(a, r"obs\['batch'\]: missing")


def test_batch_with_nan():
    a = good()
    a.obs["batch"] = ["a", None, "a", "b", "b", "a"]
    raises(a, r"obs\['batch'\]: 1 cells without a batch")


def test_too_few_batches():
    a = good()
    a.obs["batch"] = "only"
    msg = raises(a, r"1 batch\(es\) but this task needs at least 2", need_batches=2)
    assert "concatenate" in msg


def test_string_columns_become_categorical():
    a = good()
    a.obs["batch"] = a.obs["batch"].astype(str)
    a.obs["cell_type"] = ["T", np.nan, "T", "NK", "B", "T"]
    validate(a)
    assert isinstance(a.obs["batch"].dtype, pd.CategoricalDtype)
    assert isinstance(a.obs["cell_type"].dtype, pd.CategoricalDtype)
    assert a.obs["cell_type"].isna().sum() == 1


@pytest.mark.parametrize("placeholder", PLACEHOLDER_LABELS)
def test_label_placeholders_must_be_nan(placeholder):
    a = good()
    a.obs["cell_type"] = ["T", placeholder, "T", "NK", placeholder, "T"]
    msg = raises(a, r"obs\['cell_type'\]: 2 cells labelled with placeholder strings")
    assert "np.nan" in msg


def test_unused_placeholder_category_is_dropped():
    a = good()
    a.obs["cell_type"] = a.obs["cell_type"].cat.add_categories(["unknown"])
    validate(a)
    assert "unknown" not in a.obs["cell_type"].cat.categories


def test_labels_needed_but_absent():
    a = good()
    a.obs["cell_type"] = pd.Categorical([np.nan] * a.n_obs)
    raises(a, r"no labelled cell but this task needs labels", need_labels=True)
    b = good()
    del b.obs["cell_type"]
    raises(b, r"obs\['cell_type'\]: missing but this task needs it", need_labels=True)


def test_unlabelled_data_gets_a_nan_label_column():
    a = good()
    del a.obs["cell_type"]
    validate(a)
    assert a.obs["cell_type"].isna().all()


def test_hierarchy_must_cover_fine_labels():
    a = good()
    a.uns["hierarchy"] = {"T": "lymphoid", "B": "lymphoid"}  # NK missing
    raises(a, r"uns\['hierarchy'\]: does not cover fine labels \['NK'\]")


def test_hierarchy_must_agree_with_coarse_column():
    a = good()
    a.uns["hierarchy"] = {"T": "lymphoid", "B": "lymphoid", "NK": "lymphoid"}
    a.obs["cell_type_coarse"] = ["lymphoid", "myeloid", "lymphoid", "lymphoid", "myeloid", "lymphoid"]
    raises(a, r"disagrees with uns\['hierarchy'\].*'B' has coarse 'myeloid'")


def test_hierarchy_is_derived_either_way():
    a = good()
    a.obs["cell_type_coarse"] = ["T/NK", "B", "T/NK", "T/NK", "B", "T/NK"]
    validate(a, need_hierarchy=True)
    assert a.uns["hierarchy"] == {"T": "T/NK", "B": "B", "NK": "T/NK"}
    b = good()
    b.uns["hierarchy"] = {"T": "L", "B": "L", "NK": "L"}
    validate(b, need_hierarchy=True)
    assert (b.obs["cell_type_coarse"] == "L").all()


def test_fine_label_with_two_parents():
    a = good()
    a.obs["cell_type_coarse"] = ["x", "B", "y", "y", "B", "y"]
    raises(a, r"fine labels \['T'\] map to several coarse labels")


def test_hierarchy_needed_but_missing():
    raises(good(), r"needs a label hierarchy", need_hierarchy=True)


def test_protein_without_names_is_rejected():
    a = good()
    a.obsm["protein"] = np.ones((a.n_obs, 3))
    raises(a, r"obsm\['protein'\]: a ndarray without protein names")


def test_protein_misaligned_with_obs():
    a = good()
    a.obsm["protein"] = pd.DataFrame({"CD4": np.arange(a.n_obs)}, index=a.obs_names)
    a.obsm["protein"].index = a.obs_names[::-1]  # reordered in place behind anndata's back
    raises(a, r"protein table misaligned with obs")


def test_attach_protein_aligns_by_name_and_reports_missing_cells():
    a = good()
    table = pd.DataFrame({"CD4": np.arange(a.n_obs, dtype=float)}, index=a.obs_names[::-1])
    attach_protein(a, table)
    assert list(a.obsm["protein"]["CD4"]) == list(np.arange(a.n_obs, dtype=float)[::-1])
    validate(a, need_protein=True)
    with pytest.raises(DataContractError, match=r"protein table misaligned with obs: 1 of 6"):
        attach_protein(good(), table.iloc[1:])


def test_protein_values_checked():
    a = good()
    a.obsm["protein"] = pd.DataFrame({"CD4": [1.0, np.nan, 2, 3, 4, 5]}, index=a.obs_names)
    raises(a, r"obsm\['protein'\]: NaN/inf values")
    b = good()
    b.obsm["protein"] = pd.DataFrame({"CD4": list("abcdef")}, index=b.obs_names)
    raises(b, r"non-numeric columns \['CD4'\]")
    raises(good(), r"obsm\['protein'\]: missing but this task needs", need_protein=True)


def test_pseudotime_checks():
    a = good()
    a.obs["pseudotime"] = list("abcdef")
    raises(a, r"obs\['pseudotime'\]: dtype .* is not numeric")
    b = good()
    b.obs["pseudotime"] = [0.0, np.inf, 1, 2, 3, 4]
    raises(b, r"obs\['pseudotime'\]: 1 infinite values")
    c = good()
    c.obs["pseudotime"] = np.nan
    raises(c, r"all NaN but this task needs a pseudotime", need_pseudotime=True)
    d = good()
    d.obs["pseudotime"] = np.arange(d.n_obs)  # integers are fine, stored as float
    validate(d, need_pseudotime=True)
    assert d.obs["pseudotime"].dtype == np.float64


def test_source_must_be_a_dict():
    a = good()
    a.uns["source"] = "somewhere"
    raises(a, r"uns\['source'\]: expected a dict")


def test_all_violations_reported_together():
    a = good()
    a.X[0, 0] = -1
    a.obs["cell_type"] = ["T", "unknown", "T", "NK", "B", "T"]
    with pytest.raises(DataContractError) as e:
        validate(a, need_batches=3)
    assert len(e.value.violations) == 3 and isinstance(e.value, ValueError)


def test_not_an_anndata():
    with pytest.raises(DataContractError, match="expected an anndata.AnnData"):
        validate(np.ones((3, 3)))
