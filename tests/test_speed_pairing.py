"""The speed script's epoch turn-taking (benchmarks/scripts/scvi_vs_scvitools.py --pairing epochs).

scvi-tools is not in the project's environment, so the peer here is an interpreter that fails
(/bin/false) or one that does not exist: the protocol must still time every epoch of our model,
report the peer's failure, and never hang.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import datasets

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scripts" / "scvi_vs_scvitools.py"


@pytest.fixture(scope="module")
def speed_script():
    spec = importlib.util.spec_from_file_location("scvi_vs_scvitools", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    a = datasets.simulate(n_cells=300, n_genes=40, n_batches=2, n_cell_types=3, seed=0)
    a.obs["visible"] = pd.Categorical(a.obs["cell_type"].astype(object))
    del a.obsm["protein"]
    path = tmp_path_factory.mktemp("speed") / "train.h5ad"
    datasets.write_h5ad(a, path)
    return {"train": str(path), "model": "scvi", "threads": 1, "epochs": 3, "warmup": 2, "seed": 0}


@pytest.mark.parametrize("peer_python", ["/bin/false", "/nonexistent/python3"])
def test_paired_run_times_every_epoch_of_ours_and_reports_the_failed_peer(speed_script, job, peer_python,
                                                                         monkeypatch):
    if not Path("/bin/false").exists():
        pytest.skip("needs /bin/false")
    monkeypatch.setattr(speed_script, "PEER_PYTHON", peer_python)
    out = speed_script.run_paired({"ours": job, "peer": job}, timeout=300)
    assert isinstance(out["peer"], RuntimeError)
    ours = out["ours"]
    assert not isinstance(ours, Exception), ours
    assert len(ours["epoch_wall_s"]) == 3 and np.all(np.asarray(ours["epoch_wall_s"]) > 0)


def test_turns_block_until_the_coordinator_writes(speed_script):
    import os

    go_r, go_w = os.pipe()
    back_r, back_w = os.pipe()
    turns = speed_script.Turns(go_r, back_w)
    os.write(go_w, b".")
    turns.ready_then_wait()  # returns: a byte was waiting
    assert os.read(back_r, 1) == b"."
    os.close(go_w)
    with pytest.raises(RuntimeError, match="coordinating process is gone"):
        turns.wait()
    for fd in (go_r, back_r, back_w):
        os.close(fd)


def test_worker_command_sets_threads_and_interpreter(speed_script, job):
    cmd, env, res = speed_script._worker_command("ours", job)
    assert cmd[0] == sys.executable and cmd[2:4] == ["--worker", "ours"]
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"
    assert res.suffix == ".out"
