"""Every staged shared data file loads through the registry and obeys the data contract."""
import pytest

import datasets
from datasets.sources import SHARED_STANDS_IN

SHARED = datasets.shared_data_dir()
pytestmark = pytest.mark.skipif(not SHARED.is_dir(),
                                reason=f"shared data folder {SHARED} absent "
                                       "(set HARMONIZATION_BENCH_SHARED_DATA)")


@pytest.mark.parametrize("name", sorted(SHARED_STANDS_IN))
def test_shared_file_validates(name):
    if not (SHARED / f"{name}.h5ad").exists():
        pytest.skip(f"{name}.h5ad not in {SHARED}")
    spec = datasets.registry[name]
    assert spec.kind == "shared" and spec.stands_in_for
    a = datasets.load(name)  # load() validates
    needs = dict(need_labels=spec.has_labels,
                 need_hierarchy="hierarchy" in a.uns,
                 need_pseudotime="pseudotime" in a.obs,
                 need_protein="protein" in a.obsm)
    datasets.validate(a, **needs)
    assert isinstance(a.uns["source"], dict) and a.uns["source"].get("url")


def test_special_cases_of_the_shared_files():
    if not (SHARED / "cite_eccite_pbmc_small.h5ad").exists() or not (SHARED / "cite_cbmc.h5ad").exists():
        pytest.skip("CITE-seq files absent")
    eccite = datasets.load("cite_eccite_pbmc_small")
    assert eccite.obs["cell_type"].isna().all()  # no labels in the source: NaN, not a string
    with pytest.raises(datasets.DataContractError, match="no labelled cell"):
        datasets.validate(eccite, need_labels=True)
    cbmc = datasets.load("cite_cbmc")
    assert not cbmc.uns["gene_names_available"] and cbmc.var_names[0] == "gene_0000"
    datasets.validate(cbmc, need_protein=True, need_labels=True)


def test_listing_shows_shared_files_available():
    table = datasets.describe().set_index("name")
    for name in SHARED_STANDS_IN:
        if (SHARED / f"{name}.h5ad").exists():
            row = table.loc[name]
            assert row["available_locally"] and row["n_cells"] > 0 and row["n_genes"] > 0
