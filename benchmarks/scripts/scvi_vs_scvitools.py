"""Native scVI / scANVI against scvi-tools 1.5 (a peer, never a dependency): speed and quality.

Speed: training throughput (cells/s per epoch; wall clock and process CPU time) on simulated
counts (default 20,000 cells x 2,000 genes, batch 128, the same architecture: 2 x 128 layers,
10 latent dimensions, ZINB, latent library, gene dispersion), same thread count, each run a
fresh process (OMP_WAIT_POLICY left unset unless --omp-wait-policy). By default (``--pairing epochs``)
both tools' processes start together and train in turns, one epoch each, first mover alternating:
the paired ratio (median over repeats x epochs after the first of peer epoch time / ours) compares
epochs timed seconds apart, which this host's drift between fast and slow states (tens of seconds)
does not bias. ``--pairing processes`` runs one whole process after the other. The cells/s columns
are the median over repeats of the median epoch time after the first epoch.

Quality: the same architecture, epochs and KL warm-up on a 90/10 cell split of the simulator
and of real shared datasets (cellbench_mixology, top variable genes; ``pbmc3k_split``: pbmc3k's
cells halved, a technical batch planted in one half by binomial thinning, 9 fine types): held-out -ELBO per cell
(lower is better) and importance-sampled marginal log-likelihood (higher is better) for scVI;
label-transfer accuracy on a batch whose labels are hidden, and batch entropy mixing, for scANVI.
``--quality-library observed`` (or ``latent observed`` for both) runs both tools with the observed
library size (scvi-tools' default); the default, latent, is the paper's log-normal library.
``--quality-models scanvi`` skips the scVI rows. The simulator's batches differ
in library scale (exp N(0, 0.35) per batch), which a latent library lets z absorb, so both tools'
batch mixing on it is near 0 with latent and about 0.5 with observed.

``--device cuda`` times both tools on a GPU (check the CUDA paths on a machine that has one).

The peer runs under another interpreter (default /tmp/peers-venv/bin/python) in a subprocess:
this file is also its worker (``--worker``), importing only numpy, anndata and scvi there.

    .venv/bin/python benchmarks/scripts/scvi_vs_scvitools.py            # full (~30 min on 2 cores)
    .venv/bin/python benchmarks/scripts/scvi_vs_scvitools.py --quick    # small, a few minutes
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PEER_PYTHON = os.environ.get("SCVI_TOOLS_PYTHON", "/tmp/peers-venv/bin/python")


# --------------------------------------------------------------------------- workers
def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def worker_ours(job: dict) -> dict:
    sys.path.insert(0, str(REPO))
    import anndata as ad
    import numpy as np

    _set_threads(job["threads"])
    from methods.native.scvi import SCANVI, SCVI

    train = ad.read_h5ad(job["train"])
    common = dict(n_latent=10, n_hidden=128, n_layers=2, gene_likelihood="zinb", library=job.get("library", "latent"),
                  seed=job["seed"], device=job.get("device", "cpu"))
    if job["model"] == "scvi":
        model = SCVI(train, "batch", **common)
    else:
        model = SCANVI(train, "batch", "visible", scheme=job.get("scheme", "joint"),
                       classifier_layers=job.get("classifier_layers", 2), classifier_hidden=128,
                       classifier_epochs=job.get("classifier_epochs", 1), **job.get("scanvi_options", {}),
                       **common)
    turns = Turns.of(job)
    if turns is not None:
        turns.ready_then_wait()

    ends = []  # wall-clock time at each epoch's end (the turn-taking test checks epochs never overlap)

    def callback(_model, epoch):  # after the epoch's timing: hand the machine over
        ends.append(time.time())
        if turns is not None:
            turns.done()
            turns.wait()

    model.train(job["epochs"], batch_size=128, n_epochs_kl_warmup=job["warmup"], epoch_callback=callback)
    out = {"epoch_wall_s": model.history_["epoch_wall_s"], "epoch_cpu_s": model.history_["epoch_cpu_s"],
           "epoch_end_time": ends}
    if job.get("test"):
        test = ad.read_h5ad(job["test"])
        out["neg_elbo"] = model.get_elbo(test)
        if job["model"] == "scvi":
            out["marginal_ll"] = model.get_marginal_ll(test, n_mc_samples=job.get("n_mc", 100))
        np.save(job["latent"], model.get_latent_representation())
        if job["model"] == "scanvi":
            np.save(job["pred"], model.predict().astype(str))
    return out


def worker_peer(job: dict) -> dict:
    import anndata as ad
    import numpy as np
    import scvi
    from lightning.pytorch.callbacks import Callback

    _set_threads(job["threads"])
    scvi.settings.seed = job["seed"]
    scvi.settings.dl_num_workers = 0

    turns = Turns.of(job)

    class EpochTimer(Callback):
        def __init__(self):
            self.wall, self.cpu = [], []

        def on_train_start(self, trainer, pl_module):  # after Lightning's set-up
            if turns is not None:
                turns.ready_then_wait()

        def on_train_epoch_start(self, trainer, pl_module):
            self._w, self._c = time.perf_counter(), time.process_time()

        def on_train_epoch_end(self, trainer, pl_module):
            self.wall.append(time.perf_counter() - self._w)
            self.cpu.append(time.process_time() - self._c)
            if turns is not None:
                turns.done()
                turns.wait()

    train = ad.read_h5ad(job["train"])
    # scvi-tools' SCANVI classifier has n_layers x n_hidden = 2 x 128, as ours is set above
    arch = dict(n_latent=10, n_hidden=128, n_layers=2, gene_likelihood="zinb",
                use_observed_lib_size=job.get("library", "latent") == "observed", dispersion="gene")
    if job["model"] == "scvi":
        scvi.model.SCVI.setup_anndata(train, batch_key="batch")
        model = scvi.model.SCVI(train, **arch)
    else:
        train.obs["visible_peer"] = train.obs["visible"].astype(object).fillna("Unknown").astype(str)
        scvi.model.SCANVI.setup_anndata(train, batch_key="batch", labels_key="visible_peer",
                                        unlabeled_category="Unknown")
        model = scvi.model.SCANVI(train, **arch)
    timer = EpochTimer()
    model.train(max_epochs=job["epochs"], batch_size=128, train_size=1.0, check_val_every_n_epoch=None,
                enable_progress_bar=False, logger=False, enable_checkpointing=False, callbacks=[timer],
                accelerator="gpu" if job.get("device", "cpu") == "cuda" else "cpu", devices=1,
                plan_kwargs={"n_epochs_kl_warmup": job["warmup"], "lr": 1e-3, "eps": 0.01, "weight_decay": 1e-6})
    out = {"epoch_wall_s": timer.wall, "epoch_cpu_s": timer.cpu}
    if job.get("test"):
        test = ad.read_h5ad(job["test"])
        if job["model"] == "scanvi":
            test.obs["visible_peer"] = test.obs["visible"].astype(object).fillna("Unknown").astype(str)
        out["neg_elbo"] = float(-model.get_elbo(test, return_mean=False).mean())
        if job["model"] == "scvi":
            out["marginal_ll"] = float(model.get_marginal_ll(test, n_mc_samples=job.get("n_mc", 100),
                                                             return_mean=False).mean())
        np.save(job["latent"], model.get_latent_representation())
        if job["model"] == "scanvi":
            np.save(job["pred"], np.asarray(model.predict()).astype(str))
    return out


class Turns:
    """A worker's side of epoch turn-taking (``--pairing epochs``): the coordinator writes a byte
    to ``go`` when it is this worker's turn, the worker writes one to ``back`` when it is ready
    (set up) and after each timed epoch, then waits again. After the last epoch the coordinator
    releases every worker at once, so that no worker's wrap-up (or exit) runs during another's
    timed epoch. Waiting is a blocking read: no CPU used meanwhile."""

    def __init__(self, go: int, back: int):
        self.go, self.back = go, back

    @classmethod
    def of(cls, job: dict):
        return cls(*job["turns"]) if job.get("turns") else None

    def wait(self) -> None:
        if not os.read(self.go, 1):
            raise RuntimeError("the coordinating process is gone")

    def done(self) -> None:
        os.write(self.back, b".")

    def ready_then_wait(self) -> None:
        self.done()
        self.wait()


def _worker_command(tool: str, job: dict):
    """(command, environment, job file, result file) of a fresh worker process for ``job``; the
    caller removes both files (``_read_result``)."""
    python = sys.executable if tool == "ours" else PEER_PYTHON
    env = {**os.environ, "OMP_NUM_THREADS": str(job["threads"]),
           "MKL_NUM_THREADS": str(job["threads"]), "PYTHONWARNINGS": "ignore"}
    env.pop("OMP_WAIT_POLICY", None)
    if job.get("omp_wait_policy", "default") != "default":
        env["OMP_WAIT_POLICY"] = job["omp_wait_policy"].upper()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(job, fh)
    res_path = fh.name + ".out"
    return [python, __file__, "--worker", tool, fh.name, res_path], env, Path(fh.name), Path(res_path)


def _read_result(ok: bool, job_path: Path, res_path: Path):
    """The worker's JSON result if it succeeded (else None); removes both files."""
    try:
        return json.loads(res_path.read_text()) if ok and res_path.exists() else None
    finally:
        job_path.unlink(missing_ok=True)
        res_path.unlink(missing_ok=True)


def run_worker(tool: str, job: dict, timeout: float = 3600) -> dict:
    """Run one job in a fresh process of the right interpreter; returns its JSON result."""
    cmd, env, job_path, res_path = _worker_command(tool, job)
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    finally:
        result = _read_result(True, job_path, res_path)
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"{tool} worker failed:\n{proc.stderr[-3000:]}")
    return result


def run_paired(jobs: dict, timeout: float = 3600) -> dict:
    """Run ``{label: (tool, job)}`` in fresh processes that train in turns, epoch by epoch.

    Both processes start and set up at once; then the coordinator lets one train an epoch while
    the other waits on a pipe, and alternates which goes first each epoch. Each epoch of one
    tool is thus timed seconds from the other's on the same machine: this host drifts between
    fast and slow states over tens of seconds (DEVELOPERS.md), which per-process alternation
    left in the ratio. Returns {label: result dict or RuntimeError}; a failing worker leaves the
    other to finish alone. (The same tool may run under two labels: the protocol's self-check.)
    """
    import select

    procs, go, back, logs, results = {}, {}, {}, {}, {}
    try:
        for tool, (worker, job) in jobs.items():
            go_r, go[tool] = os.pipe()
            back[tool], back_w = os.pipe()
            cmd, env, job_path, res_path = _worker_command(worker, {**job, "turns": [go_r, back_w]})
            logs[tool] = tempfile.TemporaryFile("w+")
            try:
                procs[tool] = (subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=logs[tool],
                                                text=True, pass_fds=(go_r, back_w)), job_path, res_path)
            except OSError as err:  # e.g. the interpreter is missing: the other tool runs alone
                results[tool] = RuntimeError(f"{tool} worker could not start: {err}")
                _read_result(False, job_path, res_path)
            finally:
                os.close(go_r), os.close(back_w)
        alive = [tool for tool in jobs if tool in procs]

        def handed_back(tool) -> bool:
            ready, _, _ = select.select([back[tool]], [], [], timeout)
            if ready and os.read(back[tool], 1):
                return True
            alive.remove(tool)  # it exited (or hung): collected below
            return False

        def give_turn(tool) -> bool:
            try:
                os.write(go[tool], b".")
                return True
            except BrokenPipeError:  # it exited
                alive.remove(tool)
                return False

        for tool in list(alive):  # both set up before anything is timed
            handed_back(tool)
        n_epochs = max(job["epochs"] for _, job in jobs.values())
        for epoch in range(n_epochs):
            for tool in (list(alive) if epoch % 2 == 0 else alive[::-1]):
                if epoch < jobs[tool][1]["epochs"] and give_turn(tool):
                    handed_back(tool)
        for tool in list(alive):  # release: every worker wraps up (untimed) at once
            give_turn(tool)
    finally:
        for fd in list(go.values()) + list(back.values()):
            os.close(fd)  # a worker still waiting reads EOF and stops
        for tool, log in logs.items():
            if tool not in procs:
                log.close()
        for tool, (proc, job_path, res_path) in procs.items():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            logs[tool].seek(0)
            err = logs[tool].read()
            logs[tool].close()
            result = _read_result(proc.returncode == 0, job_path, res_path)
            results[tool] = (result if result is not None
                             else RuntimeError(f"{tool} worker failed (exit {proc.returncode}):\n{err[-3000:]}"))
    return results


# --------------------------------------------------------------------------- data
def make_speed_data(n_cells: int, n_genes: int, path: Path, seed: int = 0) -> dict:
    sys.path.insert(0, str(REPO))
    import numpy as np
    import pandas as pd

    import datasets

    a = datasets.simulate(n_cells=n_cells, n_genes=n_genes, n_batches=2, n_cell_types=8, seed=seed)
    vis = a.obs["cell_type"].astype(object).copy()
    vis[np.random.default_rng(seed).random(a.n_obs) < 0.5] = np.nan  # half the cells labelled
    a.obs["visible"] = pd.Categorical(vis)
    del a.obsm["protein"]
    datasets.write_h5ad(a, path)
    return {"density": a.X.nnz / (a.n_obs * a.n_vars)}


SPLIT_PBMC3K = "pbmc3k_split"


def make_quality_data(name: str, folder: Path, n_genes: int, seed: int = 0) -> dict:
    """Train/test h5ad files (90/10 split of cells) with labels hidden in one batch."""
    sys.path.insert(0, str(REPO))
    import numpy as np
    import pandas as pd

    import datasets

    if name == "simulated":
        a = datasets.simulate(n_cells=3000, n_genes=n_genes, n_batches=2, n_cell_types=6, seed=seed)
        query = str(a.obs["batch"].cat.categories[-1])
    elif name == SPLIT_PBMC3K:
        # real cells, a planted technical batch (binomial thinning of one half, the runner's
        # held-out recipe): 9 fine types incl. naive vs memory CD4 T, so transfer is not saturated
        from benchmark.scenarios.inputs import split_with_batch_effect

        a = split_with_batch_effect(datasets.load("pbmc3k"), seed=seed, names=("pbmc3k_A", "pbmc3k_B"))
        a = a[:, datasets.preprocessing.select_hvg_seurat_v3(a, n_top=n_genes, batch_key="batch")].copy()
        query = "pbmc3k_B"
    else:
        a = datasets.load(name)
        genes = datasets.preprocessing.select_hvg_seurat_v3(a, n_top=n_genes, batch_key="batch")
        a = a[:, genes].copy()
        counts = a.obs["batch"].value_counts()
        query = "Drop-seq_3cl" if "Drop-seq_3cl" in counts.index else str(counts.index[-1])
    a.obs = a.obs[["batch", "cell_type"]].copy()
    for k in list(a.obsm):
        del a.obsm[k]
    a.uns = {}
    a.var = a.var[[]]
    vis = a.obs["cell_type"].astype(object).copy()
    vis[(a.obs["batch"].astype(str) == query).to_numpy()] = np.nan
    a.obs["visible"] = pd.Categorical(vis)
    rng = np.random.default_rng(seed)
    test = rng.random(a.n_obs) < 0.1
    datasets.write_h5ad(a[~test].copy(), folder / f"{name}_train.h5ad")
    datasets.write_h5ad(a[test].copy(), folder / f"{name}_test.h5ad")
    return {"query_batch": query, "n_train": int((~test).sum()), "n_test": int(test.sum()), "n_genes": a.n_vars}


# --------------------------------------------------------------------------- experiments
def speed(args, folder: Path) -> list[dict]:
    import numpy as np

    data = folder / "speed.h5ad"
    info = make_speed_data(args.n_cells, args.n_genes, data)
    print(f"speed data: {args.n_cells} cells x {args.n_genes} genes, density {info['density']:.3f}", flush=True)
    rows, failed = [], set()
    worker = {"ours": "ours", "scvi-tools": "peer"}
    for threads in args.threads:
        for model in ("scvi", "scanvi"):
            per = {"ours": [], "scvi-tools": []}
            paired = []  # per (repeat, epoch after the first): peer epoch time / ours, same round
            for rep in range(args.repeats):
                job = {"train": str(data), "model": model, "threads": threads, "epochs": args.speed_epochs,
                       "warmup": 400, "seed": rep, "scheme": "joint", "omp_wait_policy": args.omp_wait_policy,
                       "device": args.device}
                tools = [t for t in ("ours", "scvi-tools") if t not in failed]
                if args.pairing == "epochs":
                    results = run_paired({t: (worker[t], job) for t in tools})
                else:  # one process after the other, alternating, so both see similar machine load
                    results = {}
                    for t in tools:
                        try:
                            results[t] = run_worker(worker[t], job)
                        except RuntimeError as err:
                            results[t] = err
                for tool, res in results.items():
                    if isinstance(res, Exception):  # keep the other tool's numbers; say why this one has none
                        print(f"  {model} threads={threads} {tool} FAILED (not retried): {res}", flush=True)
                        failed.add(tool)
                        continue
                    wall = np.median(res["epoch_wall_s"][1:] or res["epoch_wall_s"])
                    cpu = np.median(res["epoch_cpu_s"][1:] or res["epoch_cpu_s"])
                    per[tool].append((args.n_cells / wall, args.n_cells / cpu))
                    print(f"  {model} threads={threads} rep={rep} {tool}: {args.n_cells / wall:,.0f} cells/s wall, "
                          f"{args.n_cells / cpu:,.0f} cells/CPU-s", flush=True)
                if args.pairing == "epochs" and not any(isinstance(r, Exception) for r in results.values()) \
                        and len(results) == 2:
                    ratios = (np.asarray(results["scvi-tools"]["epoch_wall_s"][1:])
                              / np.asarray(results["ours"]["epoch_wall_s"][1:]))
                    paired.extend(ratios.tolist())
                    print(f"  {model} threads={threads} rep={rep} paired epochs ours/scvi-tools: "
                          + " ".join(f"{r:.2f}" for r in ratios), flush=True)
            ours, peer = (np.median(per[t], axis=0) if per[t] else np.full(2, np.nan) for t in ("ours", "scvi-tools"))
            q25, q50, q75 = np.quantile(paired, [0.25, 0.5, 0.75]) if paired else (np.nan,) * 3
            rows.append({"model": model, "threads": threads, "ours_cells_s": ours[0], "peer_cells_s": peer[0],
                         "ratio_wall": ours[0] / peer[0], "ours_cells_cpu_s": ours[1], "peer_cells_cpu_s": peer[1],
                         "ratio_cpu": ours[1] / peer[1], "ratio_paired_median": q50, "ratio_paired_q25": q25,
                         "ratio_paired_q75": q75, "n_paired_epochs": len(paired)})
    return rows


# "ours" = the defaults ("auto": in these transfer splits, scvi-tools' two SCANVAE choices: every cell
# bounded with U, labels entering through the classification term only, and the classifier fed the
# posterior mean); the paper's two choices (L with the observed class, a draw of z) and each alone
OURS_VARIANTS = {"ours": {}, "ours-paper-choices": {"labelled_elbo": "observed", "classifier_input": "sample"},
                 "ours-scvitools-choices": {"labelled_elbo": "marginal", "classifier_input": "mean"},
                 "ours-marginal": {"labelled_elbo": "marginal", "classifier_input": "sample"},
                 "ours-mean": {"labelled_elbo": "observed", "classifier_input": "mean"},
                 # the one-thread step at any thread count (with 2-4 threads "ours" splits it over two)
                 "ours-one-thread-step": {"overlap": False}}


def quality(args, folder: Path) -> list[dict]:
    sys.path.insert(0, str(REPO))
    import anndata as ad
    import numpy as np

    from benchmark.metrics import batch_entropy_mixing, weighted_accuracy

    rows = []
    for name in args.quality_datasets:
        info = make_quality_data(name, folder, args.quality_genes)
        print(f"quality data {name}: {info}", flush=True)
        train = ad.read_h5ad(folder / f"{name}_train.h5ad")
        hidden = train.obs["visible"].isna().to_numpy()
        truth = train.obs["cell_type"].astype(str).to_numpy()
        batches = train.obs["batch"].astype(str).to_numpy()
        for library, model, seed in itertools.product(args.quality_library, args.quality_models, args.quality_seeds):
            # scVI has no labelled-ELBO / classifier options: one "ours" row
            tools = (args.ours_variants if model == "scanvi" else ["ours"]) + ["scvi-tools"]
            for tool in tools:
                tag = f"{name}_{library}_{model}_{tool}_{seed}"
                job = {"train": str(folder / f"{name}_train.h5ad"), "test": str(folder / f"{name}_test.h5ad"),
                       "model": model, "threads": args.quality_threads, "epochs": args.quality_epochs,
                       "warmup": args.quality_warmup, "seed": seed, "n_mc": args.n_mc, "library": library,
                       "latent": str(folder / f"{tag}_z.npy"), "pred": str(folder / f"{tag}_pred.npy"),
                       "scheme": "joint", "scanvi_options": OURS_VARIANTS.get(tool, {})}
                res = run_worker("peer" if tool == "scvi-tools" else "ours", job)
                z = np.load(job["latent"])
                row = {"dataset": name, "library": library, "model": model, "tool": tool, "seed": seed,
                       "neg_elbo_test": res["neg_elbo"], "marginal_ll_test": res.get("marginal_ll", float("nan")),
                       "batch_entropy_mixing": batch_entropy_mixing(z, batches, k=50, seed=0),
                       "train_s": float(np.sum(res["epoch_wall_s"]))}
                if model == "scanvi":  # scored on the training cells of the batch whose labels were hidden
                    pred = np.load(job["pred"])
                    row["transfer_accuracy"] = float(np.mean(pred[hidden] == truth[hidden]))
                    row["transfer_weighted_accuracy"] = weighted_accuracy(truth[hidden], pred[hidden])
                rows.append(row)
                print("  ", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    return rows


def print_tables(speed_rows, quality_rows) -> None:
    import pandas as pd

    pd.set_option("display.width", 160)
    if speed_rows:
        df = pd.DataFrame(speed_rows)
        print("\nTraining throughput (cells/s per epoch; ratio = ours / scvi-tools, same run, same threads)")
        print(df.to_string(index=False, float_format=lambda v: f"{v:,.2f}" if v < 100 else f"{v:,.0f}"))
    if quality_rows:
        df = pd.DataFrame(quality_rows)
        print("\nHeld-out quality (same architecture, epochs, KL warm-up): -ELBO lower is better, marginal LL higher")
        print(df.to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
        piv = df.pivot_table(index=["dataset", "library", "model"], columns="tool",
                             values=[c for c in ("neg_elbo_test", "marginal_ll_test", "transfer_accuracy",
                                                 "transfer_weighted_accuracy", "batch_entropy_mixing")
                                     if c in df]).dropna(axis=1, how="all")
        print("\nOurs minus scvi-tools, mean over seeds (negative -ELBO difference and positive LL / accuracy / "
              "mixing = ours better)")
        metrics = [m for m in piv.columns.levels[0] if m in piv]
        diffs = []
        for variant in sorted({t for t in df["tool"] if t != "scvi-tools"}):
            d = pd.DataFrame({m: piv[m][variant] - piv[m]["scvi-tools"] for m in metrics
                              if variant in piv[m] and "scvi-tools" in piv[m]}).dropna(how="all")
            diffs.append(d.assign(ours=variant).set_index("ours", append=True))
        print(pd.concat(diffs).to_string(float_format=lambda v: f"{v:+.3f}"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    p.add_argument("--n-cells", type=int, default=20_000)
    p.add_argument("--n-genes", type=int, default=2_000)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--speed-epochs", type=int, default=5)
    p.add_argument("--quality-datasets", nargs="+", default=["simulated", "cellbench_mixology"])
    p.add_argument("--quality-genes", type=int, default=1000)
    p.add_argument("--quality-epochs", type=int, default=200)
    p.add_argument("--quality-warmup", type=int, default=100)
    p.add_argument("--quality-threads", type=int, default=1)
    # the simulator's batches differ in library scale; with a latent library z absorbs it and the
    # batches separate (both tools alike), with the observed library they mix: compare both
    p.add_argument("--quality-library", choices=["latent", "observed"], nargs="+", default=["latent"])
    p.add_argument("--quality-models", choices=["scvi", "scanvi"], nargs="+", default=["scvi", "scanvi"])
    p.add_argument("--ours-variants", nargs="+", choices=sorted(OURS_VARIANTS), default=["ours"],
                   help="our scANVI with its defaults (ours), with the paper's or scvi-tools' two choices of "
                        "labelled bound and classifier input, one of them alone, and/or with the one-thread step "
                        "(ours-one-thread-step; ours splits it over two threads at 2-4 threads)")
    p.add_argument("--quality-seeds", type=int, nargs="+", default=[0],
                   help="training seeds (the table shows each; the difference table averages them)")
    p.add_argument("--n-mc", type=int, default=100)
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-quality", action="store_true")
    # OpenMP's default policy spins briefly before a thread sleeps; PASSIVE sleeps at once, which
    # on 2 cores made every parallel region pay a wake-up (both tools' 2-thread runs ~2x slower
    # on a quiet machine); PASSIVE helps only when other processes compete for the cores
    p.add_argument("--omp-wait-policy", choices=["default", "passive", "active"], default="default",
                   help="OMP_WAIT_POLICY of the speed workers (default: leave it unset, as users run)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where both tools train in the speed runs (cuda: our device='cuda', scvi-tools' accelerator='gpu')")
    p.add_argument("--pairing", choices=["epochs", "processes"], default="epochs",
                   help="epochs: both tools' processes train in turns, one epoch each, so each epoch pair is timed "
                        "seconds apart (the paired ratio column); processes: one whole run after the other")
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.n_cells, args.n_genes, args.threads, args.repeats, args.speed_epochs = 4000, 1000, [1], 1, 3
        args.quality_epochs, args.quality_warmup, args.n_mc, args.quality_datasets = 30, 15, 20, ["simulated"]
    if not Path(PEER_PYTHON).exists():
        sys.exit(f"scvi-tools interpreter {PEER_PYTHON} not found: run ../shared/tools/install_peers.sh "
                 "or set SCVI_TOOLS_PYTHON")
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        speed_rows = [] if args.skip_speed else speed(args, folder)
        quality_rows = [] if args.skip_quality else quality(args, folder)
    print_tables(speed_rows, quality_rows)
    print(f"\n(total {time.time() - t0:.0f} s; device {args.device}; OMP_WAIT_POLICY={args.omp_wait_policy}; "
          f"speed threads {args.threads}; "
          f"quality threads {args.quality_threads})")
    if args.out:
        args.out.write_text(json.dumps({"speed": speed_rows, "quality": quality_rows, "args": vars(args)},
                                       indent=1, default=str))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        tool, job_path, out_path = sys.argv[2], sys.argv[3], sys.argv[4]
        job = json.loads(Path(job_path).read_text())
        result = worker_ours(job) if tool == "ours" else worker_peer(job)
        Path(out_path).write_text(json.dumps(result))
    else:
        main()
