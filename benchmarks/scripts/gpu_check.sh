#!/usr/bin/env bash
# CUDA check of the native scVI / scANVI, for a machine with an NVIDIA GPU (CI has none).
#
#   bash benchmarks/scripts/gpu_check.sh OUT_DIR [THREADS]
#
# 1. the model tests on CUDA: tests/test_scvi_cuda.py (CUDA against the CPU code) and the model,
#    math and scANVI-module tests, which run on CUDA there because device=None picks it;
# 2. training throughput on the GPU (20,000 cells x 2,000 genes, batch 128), ours beside
#    scvi-tools when SCVI_TOOLS_PYTHON names an interpreter that has it (else ours alone).
# Logs and the throughput JSON go to OUT_DIR. Needs python3 with torch (CUDA build), numba,
# anndata, scipy, scikit-learn, pandas and pytest; the repository root on PYTHONPATH is set here.
set -uo pipefail
OUT_DIR=${1:?usage: gpu_check.sh OUT_DIR [THREADS]}
THREADS=${2:-4}
PY=${PYTHON:-python3}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$OUT_DIR"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
cd "$REPO"
status=0
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PY" -c "import torch, numba, numpy, anndata; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '',
'| numba', numba.__version__, 'numpy', numpy.__version__, 'anndata', anndata.__version__)"
} 2>&1 | tee "$OUT_DIR/env.txt"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: nothing to check')" || exit 1

echo "== model tests on CUDA" | tee "$OUT_DIR/pytest.log"
timeout 240 "$PY" -m pytest -q -p no:cacheprovider -rfs tests/test_scvi_cuda.py tests/test_scvi_model.py \
  tests/test_scvi_math.py tests/test_scanvi_module.py 2>&1 | tee -a "$OUT_DIR/pytest.log" || status=1

echo "== training throughput on the GPU ($THREADS CPU threads)"
timeout 300 "$PY" benchmarks/scripts/scvi_vs_scvitools.py --skip-quality --device cuda --threads "$THREADS" \
  --repeats 2 --speed-epochs 3 --out "$OUT_DIR/speed_cuda.json" 2>&1 | tee "$OUT_DIR/speed.log" || status=1
exit $status
