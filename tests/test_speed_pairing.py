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
    out = speed_script.run_paired({"ours": ("ours", job), "scvi-tools": ("peer", job)}, timeout=300)
    assert isinstance(out["scvi-tools"], RuntimeError)
    ours = out["ours"]
    assert not isinstance(ours, Exception), ours
    assert len(ours["epoch_wall_s"]) == 3 and np.all(np.asarray(ours["epoch_wall_s"]) > 0)


def test_paired_workers_train_in_turns_and_never_overlap(speed_script, job):
    """Two workers (ours twice: the protocol's self-check): their timed epochs alternate, first
    mover swapping every epoch, and each starts only after the other's has ended."""
    out = speed_script.run_paired({"a": ("ours", job), "b": ("ours", job)}, timeout=300)
    spans = []
    for label in ("a", "b"):
        res = out[label]
        assert not isinstance(res, Exception), res
        ends, walls = np.asarray(res["epoch_end_time"]), np.asarray(res["epoch_wall_s"])
        assert len(ends) == len(walls) == 3
        spans += [(end - wall, end, label, epoch) for epoch, (end, wall) in enumerate(zip(ends, walls))]
    spans.sort()
    assert [(label, epoch) for _, _, label, epoch in spans] == [
        ("a", 0), ("b", 0), ("b", 1), ("a", 1), ("a", 2), ("b", 2)]
    for (_, end, *_), (start, *_) in zip(spans, spans[1:]):
        assert start >= end - 1e-3  # the next epoch began after the previous one ended


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


def test_worker_command_sets_threads_and_interpreter_and_its_files_are_removed(speed_script, job):
    cmd, env, job_path, res_path = speed_script._worker_command("ours", job)
    assert cmd[0] == sys.executable and cmd[2:4] == ["--worker", "ours"] and cmd[4:] == [str(job_path), str(res_path)]
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"
    assert job_path.exists()
    res_path.write_text('{"epoch_wall_s": [1.0]}')
    assert speed_script._read_result(True, job_path, res_path) == {"epoch_wall_s": [1.0]}
    assert not job_path.exists() and not res_path.exists()
