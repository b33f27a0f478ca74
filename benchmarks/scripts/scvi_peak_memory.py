"""Peak memory of native scVI / scANVI training on 100,000 cells x 2,000 genes (issue 4: under 4 GB,
the sparse X never densified whole).

The data are the simulator's (``datasets.simulate``, as in the speed benchmark: 2 batches, 8 types,
half the cells labelled for scANVI), written once to an h5ad file. Each model then trains in a
fresh child process, which reports its high-water resident memory (``VmHWM``) after reading the
data, after building the model, after training and after the posterior queries (latent,
normalised expression of 1,000 cells, label probabilities), so the model's own share shows
beside the data's.

    python benchmarks/scripts/scvi_peak_memory.py            # 100,000 cells, 1 epoch, 2 threads
    python benchmarks/scripts/scvi_peak_memory.py --quick    # 10,000 cells
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIMIT_MB = 4096

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])

from benchmark.isolation import _vm_hwm_kib  # the runner's reading of VmHWM

def hwm_mb():
    kib = _vm_hwm_kib()
    return float("nan") if kib is None else kib / 1024

import anndata
import torch
torch.set_num_threads(int(sys.argv[4]))
from methods.native.scvi import SCANVI, SCVI

out = {}
adata = anndata.read_h5ad(sys.argv[2])
out["after_data_mb"] = hwm_mb()
model = (SCVI(adata, "batch", seed=0) if sys.argv[3] == "scvi"
         else SCANVI(adata, "batch", "visible", scheme="joint", seed=0))
out["after_model_mb"] = hwm_mb()
t = time.perf_counter()
model.train(int(sys.argv[5]), batch_size=128)
out["train_s"] = time.perf_counter() - t
out["after_train_mb"] = hwm_mb()
model.get_latent_representation()
model.get_normalized_expression(adata[:1000])
if sys.argv[3] == "scanvi":
    model.predict_proba()
out["after_queries_mb"] = hwm_mb()
out["torch_threads"] = torch.get_num_threads()
print(json.dumps(out))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-cells", type=int, default=100_000)
    p.add_argument("--n-genes", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", nargs="+", choices=["scvi", "scanvi"], default=["scvi", "scanvi"])
    p.add_argument("--quick", action="store_true", help="10,000 cells")
    args = p.parse_args(argv)
    if args.quick:
        args.n_cells = 10_000
    import pandas as pd

    from scvi_vs_scvitools import make_speed_data  # the speed benchmark's data (simulator, half labelled)

    with tempfile.TemporaryDirectory(prefix="hb-peakmem-") as tmp:
        path = Path(tmp) / "counts.h5ad"
        t = time.perf_counter()
        density = make_speed_data(args.n_cells, args.n_genes, path)["density"]
        print(f"data: {args.n_cells:,} cells x {args.n_genes:,} genes, density {density:.3f} "
              f"(dense float32 would be {args.n_cells * args.n_genes * 4 / 2**20:,.0f} MB); "
              f"made in {time.perf_counter() - t:.0f} s", flush=True)
        rows = []
        for model in args.models:
            proc = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(path), model, str(args.threads),
                                   str(args.epochs)], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{model}: FAILED\n{proc.stderr[-3000:]}", flush=True)
                rows.append({"model": model, "status": "failed"})
                continue
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            res.update(model=model, status="ok", under_limit=res["after_queries_mb"] < LIMIT_MB)
            rows.append(res)
            print(f"{model}: {json.dumps(res)}", flush=True)
    table = pd.DataFrame(rows)
    print(f"\nPeak resident memory (MB; limit {LIMIT_MB:,}) with {args.threads} torch threads, "
          f"{args.epochs} epoch(s), {args.n_cells:,} cells x {args.n_genes:,} genes")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    return 0 if all(r.get("under_limit") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
