"""The method registry: registration rules, lookup errors, availability, plug-ins."""
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import anndata as ad

from methods import registry
from methods.base import TaskSpec
from methods.registry import RegistryError, register

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "hb_example_plugin"


@pytest.fixture
def clean_name():
    names = []
    yield names
    for n in names:
        registry.unregister(n)


def _noop(adata, task):
    return {}


def test_register_and_get(clean_name):
    clean_name.append("t_reg_ok")
    register("t_reg_ok", capabilities=("embed",), defaults={"a": 1})(_noop)
    spec = registry.get("t_reg_ok")
    assert spec.capabilities == ("embed",) and spec.defaults == {"a": 1}
    assert spec.can("embed") and not spec.can("classify")


def test_duplicate_name_rejected(clean_name):
    clean_name.append("t_reg_dup")
    register("t_reg_dup", capabilities=("embed",))(_noop)

    def other(adata, task):
        return {}

    with pytest.raises(RegistryError, match="already registered"):
        register("t_reg_dup", capabilities=("embed",))(other)


@pytest.mark.parametrize("caps", [("embedd",), (), ("embed", "fly")])
def test_unknown_capability_rejected(caps):
    with pytest.raises(RegistryError, match="capabilit"):
        register("t_reg_bad", capabilities=caps)


def test_bad_language_rejected():
    with pytest.raises(RegistryError, match="language"):
        register("t_reg_lang", capabilities=("embed",), language="julia")


def test_unknown_method_suggests_closest(clean_name):
    clean_name.append("t_reg_seurat_like")
    register("t_reg_seurat_like", capabilities=("embed",))(_noop)
    with pytest.raises(RegistryError) as err:
        registry.get("t_reg_seurat_lik")
    msg = str(err.value)
    assert "unknown method 't_reg_seurat_lik'" in msg and "Did you mean 't_reg_seurat_like'" in msg
    assert "Valid:" in msg


def test_missing_python_requirement_is_reported(clean_name):
    clean_name.append("t_reg_missing")
    register("t_reg_missing", capabilities=("embed",), requires=("no_such_module_xyz",))(_noop)
    ok, why = registry.get("t_reg_missing").availability()
    assert not ok and "no_such_module_xyz" in why and "pip install" in why


def test_missing_r_package_is_reported(clean_name, monkeypatch):
    clean_name.append("t_reg_r")
    register("t_reg_r", capabilities=("embed",), language="r", requires_r=("NoSuchRPkg",))(_noop)
    spec = registry.get("t_reg_r")
    monkeypatch.setattr(registry, "installed_r_packages", lambda: None)
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: object())
    ok, why = spec.availability()
    assert not ok and "R not found" in why
    monkeypatch.setattr(registry, "installed_r_packages", lambda: frozenset({"stats"}))
    ok, why = spec.availability()
    assert not ok and "NoSuchRPkg" in why


def test_builtin_adapters_import_cleanly():
    methods = registry.all_methods()
    assert not registry.LOAD_ERRORS, registry.LOAD_ERRORS
    for name, spec in methods.items():
        assert spec.name == name and spec.capabilities


@pytest.fixture
def plugin_entry_point(tmp_path, monkeypatch):
    """Install the example plug-in (as a user would, with pip) into tmp_path/site; yield its
    entry point, not yet loaded; unregister it afterwards."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE_PLUGIN)],
        check=True, capture_output=True, text=True,
    )
    monkeypatch.syspath_prepend(str(target))
    importlib.invalidate_caches()
    eps = [ep for ep in importlib.metadata.entry_points(group=registry.ENTRY_POINT_GROUP)
           if ep.name == "example_svd"]
    assert len(eps) == 1
    registry.unregister("example_svd")
    sys.modules.pop("hb_example_plugin", None)
    try:
        yield eps[0]
    finally:
        registry.unregister("example_svd")
        sys.modules.pop("hb_example_plugin", None)


def test_entry_point_plugin_is_discovered_and_runs(plugin_entry_point):
    """The pip-installed example plug-in is found by entry point and runs."""
    registry.load_entry_point(plugin_entry_point)
    spec = registry.get("example_svd")
    assert spec.source.startswith("plug-in example_svd")
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.poisson(1.0, size=(60, 30)).astype(np.float32))
    out = spec.fn(ad.AnnData(X), TaskSpec(n_latent=5, params=dict(spec.defaults)))
    assert out["embedding"].shape == (60, 5) and np.isfinite(out["embedding"]).all()


def test_plugin_runs_in_a_scenario(plugin_entry_point, tmp_path, monkeypatch):
    """A pip-installed plug-in is asked for by name and runs, isolated, in the pair scenario."""
    from benchmark import runner
    from benchmark.results import read_results

    # the isolated child process finds the plug-in the same way: through its import path
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    registry.load_entry_point(plugin_entry_point)
    run_dir = tmp_path / "run"
    runner.run("pair", datasets=["simulated"], methods=["example_svd"], seeds=[0], cache_dir=False,
               run_dir=run_dir, progress=False)
    res = read_results(run_dir / "results.csv")
    mine = res[res["method"] == "example_svd"]
    assert len(mine) and (mine["status"] == "ok").all(), mine[["metric", "status", "error"]]
    mix = mine[mine["metric"] == "batch_entropy_mixing"]["value"]
    assert len(mix) and mix.between(0, np.log(2) + 1e-9).all()
    # asking for a method that cannot do what the scenario scores is a clear error
    with pytest.raises(RegistryError, match="need one of"):
        runner.run("pair", datasets=["simulated"], methods=["ttest"], seeds=[0], cache_dir=False,
                   run_dir=tmp_path / "run2", progress=False)
