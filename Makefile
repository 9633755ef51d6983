# The front door. `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PACKAGES := packages/flux-sdk packages/flux-server packages/flux-worker packages/flux-cli
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install lock dev test test-fast lint format typecheck bench example

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(PY):
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q uv
	$(UV) venv -q --python python3 $(VENV)

install: $(PY)  ## create .venv with the pinned dependencies and all packages (editable)
	$(UV) pip install -q --python $(PY) -r requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps $(foreach p,$(PACKAGES),-e $(p))

lock:  ## re-pin requirements.lock from pyproject.toml (uv.lock stays local)
	$(UV) lock && $(UV) export --frozen --no-emit-workspace --all-groups -o requirements.lock

dev: install  ## start server, worker and scheduler on SQLite in ./.flux
	$(VENV)/bin/flux dev

test: install  ## run the whole test suite (SQLite and PostgreSQL)
	$(PY) -m pytest -q

test-fast: install  ## tests without e2e and PostgreSQL
	$(PY) -m pytest -q -m "not e2e and not postgres"

lint: install  ## ruff check + format check
	$(VENV)/bin/ruff check packages tests bench
	$(VENV)/bin/ruff format --check packages tests bench

format: install  ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix packages tests bench
	$(VENV)/bin/ruff format packages tests bench

typecheck: install  ## mypy over all packages
	$(VENV)/bin/mypy

bench: install  ## run the benchmark suite and print figures (installs wrk, for the load)
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }
	$(PY) -m bench $(GROUPS)

example: install  ## run the hello-world example workflow in-process
	$(PY) examples/hello_world.py
