# tkg-gpu: `make demo` runs the dev stack against a fresh local lab; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
TKG_GPU_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tkg-gpu
export TKG_GPU_CACHE
export PULUMI_HOME ?= $(TKG_GPU_CACHE)/pulumi-home
export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true
export PATH := $(TKG_GPU_CACHE)/bin:$(VENV)/bin:$(PATH)

PYTEST_ARGS ?=

.PHONY: help venv tools demo test test-unit lab-up lab-down clean

help:
	@echo "make demo      run the dev stack end to end against a fresh local lab"
	@echo "make test      run every test (unit, provider, engine)"
	@echo "make test-unit run the tests that need neither the lab nor the Pulumi engine"
	@echo "make tools     build the Pulumi CLI, language host and vCenter simulator into $(TKG_GPU_CACHE)"
	@echo "make lab-up    start the lab for interactive use; make lab-down stops it"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "==> creating the virtualenv in .venv" >&2
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --upgrade pip
	@$(VENV)/bin/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

tools:
	@tools/build-toolchain.sh >/dev/null

demo: venv tools
	@$(VENV)/bin/python -m lab demo

test-unit: venv
	@$(VENV)/bin/python -m pytest tests/unit lab/tanzu/tests $(PYTEST_ARGS)

test: venv tools
	@$(VENV)/bin/python -m pytest tests lab/tanzu/tests $(PYTEST_ARGS)

lab-up: venv tools
	@$(VENV)/bin/python -m lab start

lab-down:
	@$(VENV)/bin/python -m lab stop

clean: lab-down
	rm -rf .lab
