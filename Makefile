# The front door. `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PACKAGES := packages/flux-sdk packages/flux-server packages/flux-worker packages/flux-cli \
  packages/flux-mcp packages/flux-agents
# The first python3.13 that runs: on PATH, else pyenv's (its shim answers only when 3.13 is active).
PY313 ?= $(shell for p in $$(command -v python3.13) \
  $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13 2>/dev/null); do \
  "$$p" -c "" 2>/dev/null && echo "$$p" && break; done)
VENV313 ?= .venv-3.13
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install lock dev test test-fast test-py313 lint format typecheck bench example

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(PY):
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q uv
	$(UV) venv -q --python python3 $(VENV)

# Bytecode is compiled at install: the machines set PYTHONDONTWRITEBYTECODE, and without .pyc
# files every process (server, worker, each test's subprocess) compiles its imports again.
# uv compiles only what it installs in that call, so site-packages is compiled here as well
# (an existing .venv otherwise never gets its .pyc files); up-to-date files are skipped.
install: $(PY)  ## create .venv with the pinned dependencies and all packages (editable)
	$(UV) pip install -q --compile-bytecode --python $(PY) -r requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps $(foreach p,$(PACKAGES),-e $(p))
	$(PY) -m compileall -q -j 0 $(PACKAGES) \
	  "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"

lock:  ## re-pin requirements.lock from pyproject.toml (uv.lock stays local)
	$(UV) lock && $(UV) export --frozen --no-emit-workspace --all-groups -o requirements.lock

dev: install  ## start server, worker and scheduler on SQLite in ./.flux
	$(VENV)/bin/flux dev

test: install  ## run the whole test suite (SQLite and PostgreSQL); prints the 15 slowest tests
	$(PY) -m pytest -q --durations=15

# "3.11+" stays true: the suite without e2e and PostgreSQL runs on Python 3.13 as well, in its
# own environment, wherever a python3.13 is on PATH (pyenv provides one on our machines). CI
# runs it after `make test` (.ci/run); apart, each stays within the 20 minutes a target may
# take on a 2-core machine (together they took 23, and side by side they slowed each other).
test-py313:  ## the fast suite on Python 3.13 (skipped, saying so, when none is found)
	@if [ -z "$(PY313)" ]; then echo "python3.13 not found: the 3.13 run is skipped"; else \
	  UV_PYTHON_DOWNLOADS=never $(UV) venv -q --allow-existing --python "$(PY313)" $(VENV313) && \
	  $(UV) pip install -q --compile-bytecode --python $(VENV313)/bin/python -r requirements.lock && \
	  $(UV) pip install -q --python $(VENV313)/bin/python --no-deps \
	    $(foreach p,$(PACKAGES),-e $(p)) && \
	  $(VENV313)/bin/python -m pytest -q -m "not e2e and not postgres"; fi

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
