# The two commands of the README. Each installs whatever is missing (idempotently), then runs.
PY := .venv/bin/python
export OMP_WAIT_POLICY ?= PASSIVE
export MPLBACKEND ?= Agg

.PHONY: benchmark test setup setup-test regress asv

## make benchmark: set up, run every scenario (quick profile) and build the HTML report
benchmark: setup
	$(PY) -m benchmark run all --quick --jobs 2

## make test: set up, run the test suite, then the accuracy regression check
test: setup-test
	$(PY) -m pytest -q
	$(PY) -m benchmark regress

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh --test

regress: setup
	$(PY) -m benchmark regress

asv: setup-test
	.venv/bin/asv run --python=same --quick --show-stderr
