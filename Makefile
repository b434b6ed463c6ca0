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

.PHONY: help venv tools i18n demo test test-unit test-go lab-up lab-down clean

help:
	@echo "make demo      run the dev stack end to end against a fresh local lab"
	@echo "make test      run every test (unit, provider, engine)"
	@echo "make test-unit run the tests that need neither the lab nor the Pulumi engine"
	@echo "make tools     build the Pulumi CLI, language host, vCenter simulator and Kubernetes lab into $(TKG_GPU_CACHE)"
	@echo "make lab-up    start the lab for interactive use; make lab-down stops it"
	@echo "make i18n      compile locale/*/LC_MESSAGES/tkg-gpu.mo from the .po files"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "==> creating the virtualenv in .venv" >&2
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --upgrade pip
	@$(VENV)/bin/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

# On 2 cores with empty caches the whole build took 17 to 34.5 min on two machines, 13 to 26 of them for the
# Kubernetes group (API servers, etcd, kwok and the Kubernetes provider).
tools:
	@tools/build-toolchain.sh --with-kubernetes >/dev/null

I18N_MO := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/tkg-gpu.po))

i18n: $(I18N_MO)

$(I18N_MO): %.mo: %.po tools/i18n.py $(VENV)/.installed
	@$(VENV)/bin/python tools/i18n.py compile

demo: venv tools i18n
	@$(VENV)/bin/python -m lab demo

test-unit: venv i18n
	@$(VENV)/bin/python -m pytest tests/unit lab/tanzu/tests --ignore=lab/tanzu/tests/test_tanzu_vcenter.py $(PYTEST_ARGS)

# Go tests of the project's own Go programs: the vCenter simulator and the language host.
test-go:
	@echo "==> go test: lab/vcsim-gpu, lab/oci-registry, tools/language-host" >&2
	@cd lab/vcsim-gpu && CGO_ENABLED=0 go test ./...
	@cd lab/oci-registry && CGO_ENABLED=0 go test ./...
	@cd tools/language-host && CGO_ENABLED=0 go test ./...

test: venv tools i18n test-go
	@$(VENV)/bin/python -m pytest tests lab/tanzu/tests $(PYTEST_ARGS)

lab-up: venv tools i18n
	@$(VENV)/bin/python -m lab start

lab-down:
	@$(VENV)/bin/python -m lab stop

clean: lab-down
	rm -rf .lab
