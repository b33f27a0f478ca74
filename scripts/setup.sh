#!/usr/bin/env bash
# Idempotent set-up for harmonization-bench. Installs only what is missing:
#   1. a project virtualenv (.venv, or $HB_VENV) with torch==2.13.0 FIRST (the CPU wheel; an
#      unpinned torch would pull a multi-GB CUDA build), then the project with its extras;
#   2. R and the Debian R packages the R adapters use, plus rpy2==3.5.17 (needs root + apt);
#   3. with --test: Debian chromium, for the test that renders report.html in a real browser.
# A machine without root, apt or R still gets everything else, and is told plainly what was skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

WANT_TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) WANT_TEST=1 ;;
    *) echo "setup.sh: unknown option $arg (use --test)" >&2; exit 2 ;;
  esac
done

VENV=${HB_VENV:-.venv}
PY="$VENV/bin/python"
SKIPPED=()
say() { echo "[setup] $*"; }

R_DEBS="r-base-core r-cran-seurat r-cran-seuratobject r-bioc-scran r-bioc-sva r-bioc-edger r-bioc-limma \
r-bioc-singlecellexperiment r-bioc-scater r-bioc-scuttle r-cran-matrix r-cran-irlba r-bioc-biocneighbors \
r-bioc-biocsingular r-bioc-singler"
R_PKGS="Seurat SeuratObject scran sva edgeR limma SingleCellExperiment scater scuttle Matrix irlba BiocNeighbors BiocSingular SingleR"

can_apt() { [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; }
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---- R (before rpy2, which compiles against it) -------------------------------------------
r_missing() {  # prints the R packages that are not installed
  Rscript --vanilla -e "p <- strsplit('$R_PKGS', ' ')[[1]]; cat(setdiff(p, rownames(installed.packages())))" 2>/dev/null
}
if [ "${HB_SKIP_R:-0}" = "1" ]; then
  SKIPPED+=("R and the R adapters (HB_SKIP_R=1)")
elif command -v Rscript >/dev/null 2>&1 && [ -z "$(r_missing)" ]; then
  say "R $(Rscript --version 2>&1 | grep -o '[0-9]\.[0-9]\.[0-9]' | head -1) and the R packages are present"
elif can_apt; then
  say "installing R and Debian R packages (about a minute)"
  if ! apt_install $R_DEBS; then SKIPPED+=("R packages (apt-get install failed)"); fi
else
  SKIPPED+=("R and the Debian R packages (needs root and apt-get): Seurat, ComBat, edgeR adapters will be skipped")
fi

# ---- the project virtualenv ----------------------------------------------------------------
if [ ! -x "$PY" ]; then
  say "creating virtualenv $VENV"
  python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip > /dev/null 2>&1 || true
fi
if ! "$PY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  say "installing torch==2.13.0 (CPU wheel) first"
  "$PY" -m pip install -q torch==2.13.0 > "$VENV/pip-torch.log" 2>&1 \
    || { tail -20 "$VENV/pip-torch.log" >&2; echo "[setup] torch==2.13.0 install failed" >&2; exit 1; }
fi

EXTRAS="test,peers"
STAMP="$VENV/.hb-installed"
WANT_STAMP="$(cat pyproject.toml | sha256sum | cut -c1-16) $EXTRAS"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT_STAMP" ] || ! "$PY" -c "import benchmark, methods, datasets" 2>/dev/null; then
  say "installing harmonization-bench[$EXTRAS] (editable)"
  if ! "$PY" -m pip install -q -e ".[$EXTRAS]" > "$VENV/pip-install.log" 2>&1 \
     || ! "$PY" -c "import benchmark, methods, datasets"; then
    grep -v "^WARNING: Location" "$VENV/pip-install.log" | tail -30 >&2
    echo "[setup] project install failed (full log: $VENV/pip-install.log)" >&2; exit 1
  fi
  echo "$WANT_STAMP" > "$STAMP"
fi

if command -v Rscript >/dev/null 2>&1; then
  if ! "$PY" -c "import rpy2.robjects" 2>/dev/null; then
    say "installing rpy2==3.5.17"
    "$PY" -m pip install -q "rpy2==3.5.17" > "$VENV/pip-rpy2.log" 2>&1 || SKIPPED+=("rpy2 (pip install failed, see $VENV/pip-rpy2.log): R adapters will be skipped")
  fi
fi

# ---- chromium for the report rendering test ------------------------------------------------
if [ "$WANT_TEST" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if can_apt; then
    say "installing Debian chromium (headless report test)"
    apt_install chromium fonts-dejavu-core || SKIPPED+=("chromium (apt-get install failed): the HTML rendering test will skip")
  else
    SKIPPED+=("chromium (needs root and apt-get): the HTML rendering test will skip")
  fi
fi

if [ ${#SKIPPED[@]} -gt 0 ]; then
  for s in "${SKIPPED[@]}"; do say "SKIPPED: $s"; done
fi
say "ready: $("$PY" -c 'from importlib.metadata import version as v; print(" | ".join(f"{p} {v(p)}" for p in ("torch", "anndata", "numpy")))')"
