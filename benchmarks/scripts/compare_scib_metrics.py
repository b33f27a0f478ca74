"""Agreement and speed of our scIB metrics against scib-metrics 0.6 (a peer, never a dependency).

1. Agreement: on a real dataset (cellbench_mixology: log-normalised, top-variance genes, PCA),
   several embeddings are scored by each metric in both implementations on *identical saved
   inputs and the same neighbour graph*; prints |ours - theirs| per metric (target <= 1e-3).
   With ``--scib-path`` (a folder holding scib 1.x for the peer python, e.g. made by
   ``pip install --no-deps --target /tmp/scib_pkg scib deprecated wrapt``), also the cell-cycle
   conservation (scib 1.x only, not in scib-metrics) on the log-normalised expression of all genes.
2. Speed: our whole suite vs scib-metrics' ``Benchmarker`` (its default metrics, its own
   pynndescent neighbours), each in a fresh process so cold start (imports, JIT) counts, at
   about 1,000 (the 1,021 real cells) and 20,000 cells (synthetic cells interpolated between
   real neighbours of the same batch and label).

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scripts/compare_scib_metrics.py
      [--peers /tmp/peers-venv/bin/python] [--sizes 1000 20000] [--out DIR]
The peers venv comes from ../shared/tools/install_peers.sh.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = Path(os.environ.get("HARMONIZATION_BENCH_SHARED_DATA", REPO.parent / "shared" / "data"))

# --- the peer side: runs in the scib-metrics venv ---------------------------------------------
PEER_SAME_GRAPH = textwrap.dedent('''
    import json, sys, warnings
    import numpy as np
    warnings.filterwarnings("ignore")
    import scib_metrics as sm
    from scib_metrics.nearest_neighbors import NeighborsResults
    from scib_metrics.utils import KMeans
    d = np.load(sys.argv[1], allow_pickle=True)
    b, y, X_pre = d["batches"], d["labels"], d["X_pre"]
    out = {}
    for name in d["names"]:
        X = d["emb_" + name]
        nn = NeighborsResults(indices=d["idx_" + name], distances=d["dist_" + name])
        nn15, nn50 = nn.subset_neighbors(15), nn.subset_neighbors(50)
        r = {}
        r["silhouette_label"] = sm.silhouette_label(X, y)
        r["silhouette_batch"] = sm.silhouette_batch(X, y, b)
        r["bras"] = sm.bras(X, y, b)
        r["isolated_labels"] = sm.isolated_labels(X, y, b)
        r["ilisi_knn"] = sm.ilisi_knn(nn, b)
        r["clisi_knn"] = sm.clisi_knn(nn, y)
        r["kbet_per_label"] = sm.kbet_per_label(nn50, b, y)
        r["graph_connectivity"] = sm.graph_connectivity(nn15, y)
        r["pcr_comparison"] = sm.pcr_comparison(X_pre, X, b, categorical=True)
        for k, v in sm.nmi_ari_cluster_labels_leiden(nn15, y).items():
            r["nmi_ari_cluster_labels_leiden_" + k] = v
        for k, v in sm.nmi_ari_cluster_labels_kmeans(X, y).items():
            r["nmi_ari_cluster_labels_kmeans_" + k] = v
        out[str(name)] = {k: float(v) for k, v in r.items()}
        # the partition behind those k-means scores (same call, same default seed) for the inertia check
        out[str(name)]["kmeans_labels"] = KMeans(len(np.unique(y))).fit(np.array(X)).labels_.tolist()
    json.dump(out, open(sys.argv[2], "w"))
''')

PEER_CELL_CYCLE = textwrap.dedent('''
    import json, sys, warnings
    warnings.filterwarnings("ignore")
    import numpy as np, pandas as pd, anndata as ad, scipy.sparse as sp
    import scib
    d = np.load(sys.argv[1], allow_pickle=True)
    L = sp.load_npz(sys.argv[2]).tocsr()
    obs = pd.DataFrame({"batch": pd.Categorical(d["batches"])}, index=[f"c{i}" for i in range(L.shape[0])])
    pre = ad.AnnData(X=L, obs=obs, var=pd.DataFrame(index=[str(g) for g in d["genes"]]))
    scores = np.zeros((L.shape[0], 2))
    for b in pre.obs["batch"].cat.categories:  # the S/G2M scores scib's cell_cycle computes per batch
        sub = pre[(pre.obs["batch"] == b).to_numpy()].copy()
        scib.pp.score_cell_cycle(sub, organism="human")
        scores[(pre.obs["batch"] == b).to_numpy()] = sub.obs[["S_score", "G2M_score"]].to_numpy()
    out = {"scib_version": scib.__version__, "scores": scores.tolist(), "cell_cycle": {}}
    for name in d["names"]:
        post = ad.AnnData(X=np.zeros((L.shape[0], 1)), obs=obs.copy())
        post.obsm["X_emb"] = np.asarray(d["emb_" + name], dtype=np.float64)
        out["cell_cycle"][str(name)] = float(scib.me.cell_cycle(pre, post, batch_key="batch", embed="X_emb",
                                                                organism="human"))
    with open(sys.argv[3], "w") as f:
        json.dump(out, f)
''')

PEER_BENCHMARKER = textwrap.dedent('''
    import time
    t0 = time.perf_counter()
    import json, sys, warnings
    import numpy as np
    warnings.filterwarnings("ignore")
    import anndata as ad, pandas as pd
    from scib_metrics.benchmark import Benchmarker
    d = np.load(sys.argv[1], allow_pickle=True)
    a = ad.AnnData(X=np.zeros((len(d["batches"]), 1), dtype=np.float32),
                   obs=pd.DataFrame({"batch": d["batches"], "cell_type": d["labels"]}))
    a.obs_names = a.obs_names.astype(str)
    a.obsm["X_pre"] = d["X_pre"]
    names = [str(n) for n in d["names"]]
    for n in names:
        a.obsm[n] = d["emb_" + n]
    bm = Benchmarker(a, batch_key="batch", label_key="cell_type", embedding_obsm_keys=names,
                     pre_integrated_embedding_obsm_key="X_pre", n_jobs=1, progress_bar=False)
    t1 = time.perf_counter()
    bm.prepare()
    t2 = time.perf_counter()
    bm.benchmark()
    t3 = time.perf_counter()
    res = bm.get_results(min_max_scale=False)
    json.dump({"import_s": t1 - t0, "neighbors_s": t2 - t1, "metrics_s": t3 - t2, "total_s": t3 - t0,
               "results": res.drop(index="Metric Type").astype(float).to_dict()}, open(sys.argv[2], "w"))
''')

# --- our side, timed the same way in a fresh process --------------------------------------------
OURS_SUITE = textwrap.dedent('''
    import time
    t0 = time.perf_counter()
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[3])
    from benchmark.metrics import compute_neighbors, scib_suite
    d = np.load(sys.argv[1], allow_pickle=True)
    t1 = time.perf_counter()
    names = [str(n) for n in d["names"]]
    graphs = {n: compute_neighbors(d["emb_" + n], 89) for n in names}
    t2 = time.perf_counter()
    res = {n: scib_suite(d["emb_" + n], d["batches"], d["labels"], d["X_pre"], neighbors=graphs[n]) for n in names}
    t3 = time.perf_counter()
    json.dump({"import_s": t1 - t0, "neighbors_s": t2 - t1, "metrics_s": t3 - t2, "total_s": t3 - t0,
               "neighbor_method": graphs[names[0]].method, "results": res}, open(sys.argv[2], "w"))
''')


def real_inputs(data_dir: Path, seed: int = 0, n_pcs: int = 30, n_genes: int = 2000) -> dict:
    """Embeddings of cellbench_mixology: unintegrated PCA, per-batch-centred PCA, its shuffle, random."""
    import anndata

    a = anndata.read_h5ad(data_dir / "cellbench_mixology.h5ad")
    X = a.X.toarray().astype(np.float64)
    X = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    top = np.argsort(-X.var(0))[:n_genes]
    from sklearn.decomposition import PCA

    pca = PCA(n_components=n_pcs, svd_solver="full").fit_transform(X[:, top])
    batches = a.obs["batch"].astype(str).to_numpy()
    labels = a.obs["cell_type"].astype(str).to_numpy()
    centred = pca.copy()
    for b in np.unique(batches):  # a crude "correction": remove each batch's mean shift
        centred[batches == b] -= centred[batches == b].mean(0)
    rng = np.random.default_rng(seed)
    emb = {"pca": pca, "pca_batch_centred": centred, "shuffled": pca[rng.permutation(len(pca))],
           "random": rng.normal(size=(len(pca), 10))}
    return {"emb": emb, "batches": batches, "labels": labels, "X_pre": pca, "lognorm": X,
            "genes": np.asarray(a.var_names, dtype=str)}


def resample(inputs: dict, n: int, seed: int = 0, n_partners: int = 15) -> dict:
    """``n`` synthetic cells, each a random point between a real cell and one of its 15 nearest
    real cells of the same batch and label in the unintegrated PCA (SMOTE-like), so the larger
    data keep the real density instead of piling clones on each real cell."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    P, b, y = inputs["X_pre"], inputs["batches"], inputs["labels"]
    partners = np.tile(np.arange(len(b))[:, None], (1, n_partners))
    for key in {(bb, yy) for bb, yy in zip(b, y)}:
        cells = np.flatnonzero((b == key[0]) & (y == key[1]))
        if len(cells) < 2:
            continue
        k = min(n_partners + 1, len(cells))
        idx = NearestNeighbors(n_neighbors=k).fit(P[cells]).kneighbors(P[cells], return_distance=False)[:, 1:]
        partners[cells] = cells[idx[:, rng.integers(0, k - 1, n_partners)]]
    pick = rng.integers(0, len(b), n)
    mate = partners[pick, rng.integers(0, n_partners, n)]
    u = rng.uniform(size=(n, 1))

    def blend(M):
        return M[pick] + u * (M[mate] - M[pick])
    return {"emb": {k: blend(v) for k, v in inputs["emb"].items()}, "batches": b[pick], "labels": y[pick],
            "X_pre": blend(P)}


def save(inputs: dict, path: Path, with_graphs: bool = False) -> None:
    arrays = {"batches": inputs["batches"], "labels": inputs["labels"], "X_pre": inputs["X_pre"],
              "names": np.array(list(inputs["emb"]))}
    for name, E in inputs["emb"].items():
        arrays["emb_" + name] = E.astype(np.float32)
        if with_graphs:
            sys.path.insert(0, str(REPO))
            from benchmark.metrics import compute_neighbors

            nn = compute_neighbors(E.astype(np.float32), 89, method="exact")
            arrays["idx_" + name] = nn.indices
            arrays["dist_" + name] = nn.distances.astype(np.float32)
    np.savez(path, **arrays)


def ours_same_graph(path: Path) -> dict:
    sys.path.insert(0, str(REPO))
    from benchmark import metrics as M

    d = np.load(path, allow_pickle=True)
    b, y, X_pre = d["batches"], d["labels"], d["X_pre"]
    out = {}
    for name in d["names"]:
        X = d["emb_" + name]
        nn = M.NeighborsResult(d["idx_" + name], d["dist_" + name])
        r = M.scib_suite(X, b, y, X_pre, neighbors=nn,
                         metrics=M.suite.DEFAULT_METRICS + ("silhouette_batch", "nmi_ari_cluster_labels_leiden"))
        out[str(name)] = r
    return out


def inertia(X: np.ndarray, partition: np.ndarray) -> float:
    """k-means objective of a partition: summed squared distance of each cell to its cluster mean."""
    X = np.asarray(X, dtype=np.float64)
    return float(sum(((X[partition == c] - X[partition == c].mean(0)) ** 2).sum() for c in np.unique(partition)))


def kmeans_local_optima(path: Path, theirs: dict, n_seeds: int = 20) -> dict:
    """Per embedding: inertia of our k-means partition (scikit-learn, n_init=10) and of
    scib-metrics' (JAX, k-means++, n_init=1, seed 0), and the spread of NMI/ARI over
    ``n_seeds`` single-start scikit-learn runs (the local optima k-means can land in)."""
    from sklearn.cluster import KMeans

    sys.path.insert(0, str(REPO))
    from benchmark.metrics.nmi_ari import _scores

    d = np.load(path, allow_pickle=True)
    y = d["labels"].astype(str)
    k = len(np.unique(y))
    out = {}
    for name in d["names"]:
        X = d["emb_" + name]
        ours = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(X)
        singles = [_scores(y, KMeans(n_clusters=k, n_init=1, random_state=s).fit_predict(X)) for s in range(n_seeds)]
        nmi, ari = np.array(singles).T
        out[str(name)] = {"inertia_ours": inertia(X, ours),
                          "inertia_theirs": inertia(X, np.asarray(theirs[str(name)]["kmeans_labels"])),
                          "nmi_range": (float(nmi.min()), float(nmi.max())),
                          "ari_range": (float(ari.min()), float(ari.max()))}
    return out


def print_kmeans_check(ours: dict, theirs: dict, optima: dict) -> None:
    print("\nk-means NMI/ARI: scib-metrics runs its own JAX k-means (k-means++, n_init=1, 300 Lloyd steps,\n"
          "float32), we run scikit-learn's (k-means++, n_init=10, best inertia). Their random streams differ,\n"
          "so the partitions agree only where k-means has one clear optimum. Lower inertia = better optimum:")
    print(f"{'embedding':20s}{'inertia ours':>14s}{'theirs':>14s}{'ours/theirs':>12s}{'|dNMI|':>9s}{'|dARI|':>9s}"
          f"{'NMI over 20 starts':>22s}{'ARI over 20 starts':>22s}")
    key = "nmi_ari_cluster_labels_kmeans_"
    for n, o in optima.items():
        dn = abs(ours[n][key + "nmi"] - theirs[n][key + "nmi"])
        da = abs(ours[n][key + "ari"] - theirs[n][key + "ari"])
        print(f"{n:20s}{o['inertia_ours']:14.6g}{o['inertia_theirs']:14.6g}{o['inertia_ours'] / o['inertia_theirs']:12.6f}"
              f"{dn:9.1e}{da:9.1e}{o['nmi_range'][0]:11.4f}-{o['nmi_range'][1]:<10.4f}"
              f"{o['ari_range'][0]:11.4f}-{o['ari_range'][1]:<10.4f}")
    worse = [n for n, o in optima.items() if o["inertia_ours"] > o["inertia_theirs"] * (1 + 1e-6)]
    print("ours reaches an inertia at least as low on every embedding" if not worse else
          f"ours has a HIGHER inertia (worse optimum) on: {', '.join(worse)}")
    for n, o in optima.items():
        diff = max(abs(ours[n][key + m] - theirs[n][key + m]) for m in ("nmi", "ari"))
        if diff <= 1e-3:
            continue
        inside = all(o[f"{m}_range"][0] - 1e-12 <= side[n][key + m] <= o[f"{m}_range"][1] + 1e-12
                     for m in ("nmi", "ari") for side in (ours, theirs))
        print(f"{n}: |diff| {diff:.1e} > 1e-3 " + (
            "but both scores lie inside the spread of single-start k-means optima: a local optimum of an\n"
            "  ill-posed clustering (no structure to find), not a disagreement in the metric" if inside else
            "and a score lies OUTSIDE the spread of single-start optima: investigate"))


def cell_cycle_agreement(peers: str, scib_path: str, inputs: dict, out: Path) -> None:
    """Cell-cycle conservation (ours vs scib 1.x) on every embedding, same S/G2M gene lists."""
    import scipy.sparse as sp

    sys.path.insert(0, str(REPO))
    from benchmark.metrics import cell_cycle_conservation, cell_cycle_scores

    L = sp.csr_matrix(inputs["lognorm"])
    sp.save_npz(out / "lognorm.npz", L)
    np.savez(out / "cell_cycle_inputs.npz", batches=inputs["batches"], genes=inputs["genes"],
             names=np.array(list(inputs["emb"])), **{"emb_" + k: v for k, v in inputs["emb"].items()})
    (out / "peer_cell_cycle.py").write_text(PEER_CELL_CYCLE)
    subprocess.run([peers, str(out / "peer_cell_cycle.py"), str(out / "cell_cycle_inputs.npz"), str(out / "lognorm.npz"),
                    str(out / "peer_cell_cycle.json")], check=True, timeout=3600,
                   env={**os.environ, "PYTHONPATH": scib_path, "PYTHONWARNINGS": "ignore"})
    theirs = json.loads((out / "peer_cell_cycle.json").read_text())
    cc = cell_cycle_scores(L, inputs["genes"], inputs["batches"])
    print(f"\nCell-cycle conservation vs scib {theirs['scib_version']} (log-normalised expression of all genes):")
    print(f"S/G2M scores: max |ours - scanpy's| = {np.abs(cc - np.asarray(theirs['scores'])).max():.1e}")
    for name, E in inputs["emb"].items():
        ours = cell_cycle_conservation(L, E, cc, inputs["batches"])
        ref = theirs["cell_cycle"][name]
        flag = "" if abs(ours - ref) <= 1e-3 else "  > 1e-3"
        print(f"{name:20s} ours {ours:.6f}  scib {ref:.6f}  |diff| {abs(ours - ref):.1e}{flag}")


def run(cmd, timeout=3600) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default="/tmp/peers-venv/bin/python")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 20000])
    ap.add_argument("--skip-agreement", action="store_true")
    ap.add_argument("--scib-path", default=None,
                    help="folder with scib 1.x importable by the peer python: adds the cell-cycle agreement")
    ap.add_argument("--out", type=Path, default=None, help="folder for inputs and JSON results (default: temp)")
    args = ap.parse_args(argv)
    if not Path(args.peers).exists():
        print(f"peer python {args.peers} not found: run ../shared/tools/install_peers.sh", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="scib_compare_"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "peer_same_graph.py").write_text(PEER_SAME_GRAPH)
    (out / "peer_benchmarker.py").write_text(PEER_BENCHMARKER)
    (out / "ours_suite.py").write_text(OURS_SUITE)
    real = real_inputs(args.data)
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"cellbench_mixology: {len(real['batches'])} cells, {len(set(real['batches']))} batches, "
          f"{len(set(real['labels']))} cell lines; OMP_NUM_THREADS={threads}")

    if not args.skip_agreement:
        path = out / "agreement_inputs.npz"
        save(real, path, with_graphs=True)
        run([args.peers, str(out / "peer_same_graph.py"), str(path), str(out / "peer_same_graph.json")])
        theirs = json.loads((out / "peer_same_graph.json").read_text())
        ours = ours_same_graph(path)
        print("\nAgreement on identical inputs and neighbour graph (|ours - scib-metrics|):")
        metrics = [m for m in next(iter(theirs.values())) if m != "kmeans_labels"]
        print(f"{'metric':38s}" + "".join(f"{n:>20s}" for n in theirs) + f"{'max |diff|':>12s}")
        worst = 0.0
        for m in metrics:
            diffs = [abs(ours[n][m] - theirs[n][m]) for n in theirs]
            worst = max(worst, max(diffs))
            cells = "".join(f"{ours[n][m]:9.4f}/{theirs[n][m]:<9.4f} " for n in theirs)
            flag = "" if max(diffs) <= 1e-3 else "  > 1e-3"
            print(f"{m:38s}{cells}{max(diffs):12.2e}{flag}")
        print(f"(cells: ours/theirs)  worst |diff| = {worst:.2e}")
        optima = kmeans_local_optima(path, theirs)
        print_kmeans_check(ours, theirs, optima)
        (out / "agreement.json").write_text(json.dumps({"ours": ours, "theirs": theirs, "kmeans": optima}, indent=1))
        if args.scib_path:
            cell_cycle_agreement(args.peers, args.scib_path, real, out)

    print("\nSpeed, fresh processes (cold start included), 4 embeddings each:")
    print(f"{'cells':>7s} {'ours total s':>13s} {'(nn / metrics)':>16s} {'scib-metrics s':>15s} {'(nn / metrics)':>16s} "
          f"{'ratio':>7s} {'1-min load before/after':>24s}")
    for n in args.sizes:
        # about 1,000 cells: the real 1,021 themselves; larger: real cells resampled
        inputs = real if n <= len(real["batches"]) else resample(real, n)
        n = len(inputs["batches"])
        path = out / f"speed_{n}.npz"
        save(inputs, path)
        load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
        t_ours = run([sys.executable, str(out / "ours_suite.py"), str(path), str(out / f"ours_{n}.json"), str(REPO)])
        t_peer = run([args.peers, str(out / "peer_benchmarker.py"), str(path), str(out / f"peer_{n}.json")])
        o = json.loads((out / f"ours_{n}.json").read_text())
        p = json.loads((out / f"peer_{n}.json").read_text())
        print(f"{n:7d} {t_ours:13.1f} {o['neighbors_s']:7.1f} /{o['metrics_s']:7.1f} {t_peer:15.1f} "
              f"{p['neighbors_s']:7.1f} /{p['metrics_s']:7.1f} {t_peer / t_ours:7.1f}x "
              f"{load_before:12.1f} / {os.getloadavg()[0]:.1f}")
    print(f"\ninputs and JSON results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
