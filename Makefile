# Entry points: `make demo` (local cluster + operator + a sample Pulp) and `make test` (everything).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv testbin nodebin images crds lint unit integration e2e test demo demo-down clean

help:
	@echo "make demo   - start a local cluster, run the operator, deploy a sample Pulp"
	@echo "make test   - set up and run lint, type checks and every test tier"
	@echo "make unit | integration | e2e | lint | crds | testbin | nodebin | images"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

testbin:
	bash hack/testbin/build.sh

# CoreDNS and the busybox test image for the real node (Debian packages installed when missing)
nodebin:
	bash hack/node/build.sh

# Stand-in container images (pulp-minimal, pulp-web, postgres, redis, pause), cached
images:
	bash hack/images/build.sh
	bash hack/images/build.sh --pulp-tag 3.13 pulp-minimal pulp-web
	bash hack/operator-image/build.sh

crds: venv
	$(BIN)/pulp-operator crds --output-dir config/crd

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: venv testbin
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

e2e: venv testbin nodebin images
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

test: venv testbin nodebin images lint
	$(BIN)/pytest $(PYTEST_ARGS)

demo: venv testbin nodebin images
	bash hack/demo.sh

demo-down:
	bash hack/demo.sh down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
