# The two commands: `make demo` and `make test`. Everything they need is installed here,
# idempotently (stamp files), so both work as the first command on a fresh machine.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
IAC_STAMP := .venv-iac/.installed
AZURITE := node_modules/.bin/azurite-table
# The dashboard test renders the page in Debian's Chromium (headless).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo test lint typecheck unit iac bench simulate clean

setup: $(VENV_STAMP) $(AZURITE) $(CHROMIUM)

$(VENV_STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(AZURITE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Skipped when present (the file target); apt-get update first, a fresh machine has no lists.
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		chromium fonts-liberation

# checkov lives in its own venv: its pins conflict with the app's (see toolchain notes).
$(IAC_STAMP):
	test -x .venv-iac/bin/python || $(PYTHON) -m venv .venv-iac
	.venv-iac/bin/pip install --quiet --disable-pip-version-check "checkov==3.3.30"
	touch $@

demo: setup
	$(PY) -m scripts.demo

lint: $(VENV_STAMP)
	$(PY) -m ruff check .

typecheck: $(VENV_STAMP)
	$(PY) -m mypy

unit: setup
	$(PY) -m pytest

iac: $(IAC_STAMP) $(VENV_STAMP)
	$(PY) scripts/checkov_gate.py

# The same end-to-end scenarios again in worlds as slow and limited as production and
# as faulty as a bad day (compressed time; emulators/README.md, "World profiles").
WORLD_SCENARIOS := tests/scenarios/test_delta_sync.py tests/scenarios/test_merges.py

test: setup $(IAC_STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -n 2
	SCENARIO_PROFILE=production $(PY) -m pytest -q -n 2 $(WORLD_SCENARIOS)
	SCENARIO_PROFILE=hostile SCENARIO_SEED=7 $(PY) -m pytest -q -n 2 $(WORLD_SCENARIOS)
	$(PY) scripts/checkov_gate.py

# The sync against the production-like world, measured: bench/results.{json,md}.
# A few minutes; FULL=1 runs the issue's sizes (hours on a small machine).
bench: setup
	$(PY) -m benchmarks $(if $(FULL),--full)

# Seeded fault-injection simulation: make simulate SEEDS=1000 [FROM=0] [VERBOSE=1]
SEEDS ?= 1000
FROM ?= 0
simulate: $(VENV_STAMP)
	$(PY) -m tests.simulation --seeds $(SEEDS) --from $(FROM) $(if $(VERBOSE),--verbose)

clean:
	rm -rf $(VENV) .venv-iac node_modules .pytest_cache .mypy_cache .ruff_cache .run
