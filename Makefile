# Two commands do everything on a fresh machine (Python 3.11, pip, make): `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# This machine's pip config names local wheel folders that may be absent; pip warns once per package.
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }
# uv makes a version's venv in about 5 s where pip takes about 40 s (both with empty caches, measured here); pip puts
# it into .venv, so nothing is installed by hand.
UV_VERSION := 0.13.9
UV := $(BIN)/uv
# The supported Airflow minors, each pinned by constraints/airflow-<minor>.txt (which names its exact release):
# `make test` runs the newest in .venv, `make test-compat` the others, each in .venv-<minor>.
AIRFLOW_MAIN := 3.3
AIRFLOW_COMPAT := 3.0 3.1 3.2
# `make test-distributed` runs the CeleryExecutor scenarios on the newest and on this older minor, where the pay-once
# record lives in object storage, not in task_state_store (3.2 keeps it as 3.0 and 3.1 do, and retries a killed task
# process itself, which 3.0 does not).
AIRFLOW_DISTRIBUTED := $(AIRFLOW_MAIN) 3.2
CONSTRAINTS := constraints/airflow-$(AIRFLOW_MAIN).txt
# Upper bounds that `make constraints` adds where a release leaves them open and breaks past them (Airflow's own
# constraint files would hold them; these are the bounds the next releases declare): newer FastAPI, universal-pathlib
# and aiosqlite break 3.0.6 (HTTP 422 on every task start, ObjectStoragePath refusing file://; 3.1 caps all three),
# FastAPI 0.137+ breaks 3.2.2's dag-processor (a pydantic discriminator error; 3.3.2 caps it).
CAPS_3.0 := "fastapi<0.118" "universal-pathlib<0.3" "aiosqlite<0.22"
CAPS_3.2 := "fastapi<0.137"
# pytest exits 5 when it collects nothing: that is a failure here, a suite must not be empty.
NOT_EMPTY = || { status=$$?; [ $$status -ne 5 ] || echo "pytest collected no tests" >&2; exit $$status; }

DAG ?= genmedia_img2img_pipeline

.PHONY: install test test-deployments test-deployments-a test-deployments-b test-others lint unit demo up docs constraints test-compat test-distributed clean

install: $(STAMP)

# The emulator (emulator/, the distribution genmedia-emulator) and the local Airflow harness (stack/, genmedia-stack),
# which the dev extra names, are installed from this repository in the same command, so that the dev extra takes them
# from here.
DEV_INSTALL := -e ./emulator -e ./stack -e ".[dev]"
DEV_PYPROJECTS := pyproject.toml emulator/pyproject.toml stack/pyproject.toml

$(STAMP): $(DEV_PYPROJECTS) $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) $(DEV_INSTALL) 2>&1 | $(QUIET_PIP)
	touch $@

$(UV): | $(STAMP)
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)" 2>&1 | $(QUIET_PIP)

## The tests: lint, types, then every test (unit, integration against the emulator, system with real Airflow, the
## wheels' contents, deployment on a real local Airflow) but the CeleryExecutor ones, on the newest supported Airflow.
## By marker: `pytest -m "not deployment"` runs all but tests/deployment; a -m of your own replaces pyproject's
## `-m 'not distributed'`, so `pytest -m "deployment and not distributed"` is what this runs of tests/deployment.
## It runs three pytest sessions at once, the real deployments in two halves (each half's modules one after the other)
## and everything else, and prints each one's output whole when it ends: a deployment test spends most of its time
## waiting on its stack, with the CPU idle (measured: 740 s of deployment tests, a third of it the one 90 s outage
## scenario and its neighbours; the halves below take about 370 s each).
test: lint
	$(MAKE) --no-print-directory -j 3 --output-sync=target test-deployments-a test-deployments-b test-others

# The deployment modules of the first half, the longest (the vendor faults' 90 s outage) with the shorter ones that
# balance it; every other module of tests/deployment, a new one too, runs in the second half.
DEPLOYMENTS_A := $(addprefix tests/deployment/,test_vendor_faults.py test_examples.py test_up.py test_worker_kill.py)
DEPLOYMENT_TESTS := -m "deployment and not distributed and not soak"

test-deployments: $(STAMP)
	$(MAKE) --no-print-directory -j 2 --output-sync=target test-deployments-a test-deployments-b

test-deployments-a: $(STAMP)
	$(BIN)/python -m pytest $(DEPLOYMENT_TESTS) $(DEPLOYMENTS_A) $(NOT_EMPTY)

test-deployments-b: $(STAMP)
	$(BIN)/python -m pytest $(DEPLOYMENT_TESTS) tests/deployment $(addprefix --ignore=,$(DEPLOYMENTS_A)) $(NOT_EMPTY)

test-others: $(STAMP)
	$(BIN)/python -m pytest -m "not deployment" $(NOT_EMPTY)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy airflow_provider_genmedia emulator/genmedia_emulator stack/genmedia_stack

## The older supported Airflow minors (3.0, 3.1, 3.2; `make test` covers 3.3), each in its own venv: the unit tests,
## then the deployment scenarios (tests marked `compat`: the img2img pipeline, a triggerer and a worker killed, a
## vendor outage ridden out and one past its budget) on a real deployment of that version. Every version runs even when one fails; a summary of the scenarios ends it.
## `make test-compat-3.1` runs one version.
test-compat:
	status=0; $(MAKE) --no-print-directory -k $(foreach minor,$(AIRFLOW_COMPAT),test-compat-$(minor)) || status=$$?; \
	echo "== make test-compat: the deployment scenarios, per Airflow version"; \
	cat $(foreach minor,$(AIRFLOW_COMPAT),.tmp/compat/summary-$(minor).txt) 2>/dev/null || true; \
	exit $$status

test-compat-%: compat-unit-% compat-deployment-%
	@true

# The Starlette of Airflow 3.0 and 3.1 (0.48, under their FastAPI cap) uses an alias that anyio 4.15+ deprecates; on
# 3.0 it is imported while pytest collects, where warnings are errors. An older anyio is no way out: its pytest
# plugin uses a name that pytest 9.2 deprecates in turn.
COMPAT_PYTEST := -W "ignore:The anyio.abc.BlockingPortal alias is deprecated:DeprecationWarning"

compat-unit-%: .venv-%/.installed
	.venv-$*/bin/python -m pytest $(COMPAT_PYTEST) tests/unit -q $(NOT_EMPTY)

compat-deployment-%: .venv-%/.installed
	mkdir -p .tmp/compat && rm -f .tmp/compat/summary-$*.txt
	GENMEDIA_SCENARIO_SUMMARY=.tmp/compat/summary-$*.txt .venv-$*/bin/python -m pytest $(COMPAT_PYTEST) \
		tests/deployment -m compat -rs $(NOT_EMPTY)

## The deployment production teams run, on loopback: CeleryExecutor on PostgreSQL and Redis (Debian's packages,
## installed with apt-get when missing, so as root), two triggerers and two workers that share no disk, publishing to a
## local S3; the tests marked `distributed`, on Airflow 3.3 and 3.2. Both versions run even when one fails; a summary
## of the scenarios and the wall time end it. `make distributed-3.2` runs one version.
test-distributed:
	start=$$SECONDS; status=0; \
	$(MAKE) --no-print-directory -k $(foreach minor,$(AIRFLOW_DISTRIBUTED),distributed-$(minor)) || status=$$?; \
	echo "== make test-distributed: the CeleryExecutor scenarios, per Airflow version"; \
	cat $(foreach minor,$(AIRFLOW_DISTRIBUTED),.tmp/distributed/summary-$(minor).txt) 2>/dev/null || true; \
	echo "== make test-distributed: $$((SECONDS - start)) s"; \
	exit $$status

# $(1): the Airflow minor, $(2): the python of its venv.
define distributed-scenarios
mkdir -p .tmp/distributed && rm -f .tmp/distributed/summary-$(1).txt
GENMEDIA_SCENARIO_SUMMARY=.tmp/distributed/summary-$(1).txt $(2) -m pytest $(COMPAT_PYTEST) tests/deployment \
	-m distributed -rs $(NOT_EMPTY)
endef

distributed-$(AIRFLOW_MAIN): install
	$(call distributed-scenarios,$(AIRFLOW_MAIN),$(BIN)/python)

distributed-%: .venv-%/.installed
	$(call distributed-scenarios,$*,.venv-$*/bin/python)

# One Airflow minor's venv, made afresh (seconds with uv) from its constraints file, with the exact release it pins.
# Compiled to bytecode at install, as pip does: uv does not by default, and where PYTHONDONTWRITEBYTECODE is set (as on
# this machine) every Airflow process of the deployment scenarios then compiles Airflow again (3.4 s of CPU to import
# the scheduler's modules, against 1.6 s compiled).
.venv-%/.installed: $(DEV_PYPROJECTS) constraints/airflow-%.txt | $(UV)
	rm -rf .venv-$*
	$(UV) venv -q -p $(PYTHON) .venv-$*
	$(UV) pip install -q --compile-bytecode -p .venv-$*/bin/python -c constraints/airflow-$*.txt $(DEV_INSTALL) \
		"apache-airflow==$$(sed -n 's/^apache-airflow==//p' constraints/airflow-$*.txt)"
	touch $@

.PRECIOUS: .venv-%/.installed

## The main job end to end on the local emulator: `make demo`, or `make demo DAG=genmedia_batch_video`.
demo: install
	$(BIN)/python scripts/demo.py --dag $(DAG)

## A local Airflow on 127.0.0.1 (api-server with the UI, scheduler, dag-processor, triggerer) with the example DAGs
## on the emulator; prints the URL, Ctrl-C stops it all (so does SIGINT or SIGTERM sent to make alone). `make up
## PORT=8090` for another port than 8080, `UP_ROOT=<folder>` for another place than .tmp/up (made afresh each time).
up: install
	$(BIN)/python scripts/up.py $(if $(PORT),--port $(PORT)) $(if $(UP_ROOT),--root $(UP_ROOT))

## The docs site: Sphinx (the docs extra, pinned by docs/constraints.txt) builds docs/ into docs/_build/html; a warning
## (a snippet marker gone from an example DAG, a broken link, a page outside the table of contents) fails it.
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): pyproject.toml docs/constraints.txt $(STAMP)
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -c docs/constraints.txt -e ".[docs]" 2>&1 | $(QUIET_PIP)
	touch $@

# docs/api holds the API reference's module pages that autosummary writes at each build: made afresh, so that a
# module renamed or removed leaves no page behind.
docs: $(DOCS_STAMP)
	rm -rf docs/_build docs/api
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html
	@echo "The docs site: docs/_build/html/index.html"

## Only the fast tests (no real Airflow runs).
unit: install
	$(BIN)/python -m pytest tests/unit

## Regenerate one Airflow minor's constraints, `make constraints AIRFLOW=3.1.8` (writes constraints/airflow-3.1.txt):
## resolves the dev extra with that exact Airflow, the minor's CAPS_<minor> above and the newest versions allowed of
## everything else, installs it in a throwaway venv and freezes it, the project, its emulator and harness left out (Airflow's
## advice for reproducible installs). Review the diff and run `make test` / `make test-compat-<minor>` before committing
## it.
constraints: MINOR = $(word 1,$(subst ., ,$(AIRFLOW))).$(word 2,$(subst ., ,$(AIRFLOW)))
constraints: | $(UV)
	@[[ "$(AIRFLOW)" =~ ^[0-9]+\.[0-9]+\.[0-9]+$$ ]] || { echo "usage: make constraints AIRFLOW=3.x.y" >&2; exit 2; }
	rm -rf .tmp/constraints-venv
	$(UV) venv -q -p $(PYTHON) .tmp/constraints-venv
	$(UV) pip install -q -p .tmp/constraints-venv/bin/python --refresh "apache-airflow==$(AIRFLOW)" $(CAPS_$(MINOR)) \
		$(DEV_INSTALL)
	mkdir -p constraints
	$(UV) pip freeze -q -p .tmp/constraints-venv/bin/python --exclude-editable > constraints/airflow-$(MINOR).txt
	rm -rf .tmp/constraints-venv

clean:
	rm -rf $(VENV) $(VENV)-* .tmp .airflow .mypy_cache .ruff_cache demo-output docs/_build docs/api
