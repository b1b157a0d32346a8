# Two commands do everything on a fresh machine (Python 3.11, pip, make): `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# This machine's pip config names local wheel folders that may be absent; pip warns once per package.
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }

DAG ?= genmedia_img2img_pipeline

.PHONY: install test lint unit demo up constraints clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]" 2>&1 | $(QUIET_PIP)
	touch $@

## The tests: lint, types, then every test (unit, integration against the emulator, system with real Airflow).
## pytest exits 5 when it collects nothing: that is a failure here, the suite must not be empty.
test: lint
	$(BIN)/python -m pytest || { status=$$?; [ $$status -ne 5 ] || echo "pytest collected no tests" >&2; exit $$status; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy airflow_provider_genmedia

## The main job end to end on the local emulator: `make demo`, or `make demo DAG=genmedia_batch_video`.
demo: install
	$(BIN)/python scripts/demo.py --dag $(DAG)

## A local Airflow on 127.0.0.1 (api-server with the UI, scheduler, dag-processor, triggerer) with the example DAGs
## on the emulator; prints the URL, Ctrl-C stops it all. `make up PORT=8090` for another port than 8080.
up: install
	$(BIN)/python scripts/up.py $(if $(PORT),--port $(PORT))

## Only the fast tests (no real Airflow runs).
unit: install
	$(BIN)/python -m pytest tests/unit

## Refresh constraints.txt from a clean install of the newest allowed versions (Airflow's advice for
## reproducible installs); review the diff and run `make test` before committing it.
constraints:
	rm -rf .tmp/constraints-venv
	$(PYTHON) -m venv .tmp/constraints-venv
	.tmp/constraints-venv/bin/python -m pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	.tmp/constraints-venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | $(QUIET_PIP)
	.tmp/constraints-venv/bin/python -m pip freeze --exclude-editable | grep -v "^-e " > constraints.txt
	rm -rf .tmp/constraints-venv

clean:
	rm -rf $(VENV) .tmp .airflow .mypy_cache .ruff_cache demo-output
