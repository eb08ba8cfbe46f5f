# Entry points: `make demo` (local cluster + operator + a sample Pulp) and `make test` (everything).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv testbin nodebin images tools slapd services crds generate check-generated golden \
	lint unit integration e2e test bench demo demo-images demo-down deploy undeploy clean

help:
	@echo "make demo   - start a local cluster, run the operator, deploy a sample Pulp"
	@echo "make test   - set up and run lint, type checks and every test tier"
	@echo "make unit | integration | e2e | lint | generate | testbin | nodebin | images | tools | slapd | services"
	@echo "make deploy [DEPLOY_MODE=namespaced|cluster-wide] [WATCH_NAMESPACES=\"a b\"] [IMG=...]"
	@echo "make undeploy  - remove what make deploy applied (the CRDs and Pulps stay)"
	@echo "make bench  - measure speed, memory and API requests (bench/results/, README table)"

$(STAMP): pyproject.toml devcluster/pyproject.toml generate/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e ./devcluster -e ./generate
	touch $@

venv: $(STAMP)

testbin:
	bash hack/testbin/build.sh

# CoreDNS and the busybox test image for the real node (Debian packages installed when missing)
nodebin:
	bash hack/node/build.sh

# Debian slapd and ldap-utils for the LDAP end-to-end test (left unconfigured, not started)
slapd:
	bash hack/ldap/install.sh

# Stand-in container images (pulp-minimal, pulp-web, postgres, redis, pause, otel-collector
# with the collector of hack/otelcol), cached
images:
	bash hack/images/build.sh
	bash hack/images/build.sh --pulp-tag 3.122.2 pulp-minimal pulp-web
	bash hack/images/build.sh --pulp-tag 3.13 pulp-minimal pulp-web
	bash hack/operator-image/build.sh

# Helm, the OLM bundle validators and the PromQL/monitoring checker, built from Go modules, cached
tools:
	bash hack/tools/build.sh

crds: generate

# Every generated artefact: CRDs, kustomize tree, Helm chart, OLM bundle, monitoring kit, docs
generate: venv
	$(BIN)/python -m pulp_generate

check-generated: venv
	$(BIN)/python -m pulp_generate --check

# make deploy: the operator into the current kubeconfig context with kustomize (an overlay of
# config/default written to .deploy/ for the settings given).
DEPLOY_MODE ?= namespaced
WATCH_NAMESPACES ?=
DEPLOY_NAMESPACE ?= pulp-operator-system
IMG ?=
KUBECTL ?= $(shell command -v kubectl || echo $(HOME)/.cache/pulp-operator/testbin/v1.36.3/kubectl)

deploy: venv
	$(BIN)/python -m pulp_generate overlay --mode $(DEPLOY_MODE) --namespace $(DEPLOY_NAMESPACE) \
		--watch "$(WATCH_NAMESPACES)" $(if $(IMG),--image $(IMG)) --out .deploy
	$(KUBECTL) kustomize .deploy | $(KUBECTL) apply --server-side -f -
	$(KUBECTL) -n $(DEPLOY_NAMESPACE) rollout status deployment/pulp-operator --timeout=300s

undeploy: venv
	test -d .deploy || $(BIN)/python -m pulp_generate overlay --mode $(DEPLOY_MODE) \
		--namespace $(DEPLOY_NAMESPACE) --watch "$(WATCH_NAMESPACES)" --out .deploy
	$(KUBECTL) kustomize .deploy | $(BIN)/python -m pulp_generate without-crds \
		| $(KUBECTL) delete --ignore-not-found -f -

# Servers the end-to-end tests run on the host: versitygw (S3), fake-gcs-server (GCS), Azurite
# (Azure Blob), Debian's postgresql and redis-server; cached per version
services:
	bash hack/services/build.sh

# Accept a deliberate change of what the operator renders (say in CHANGELOG.md which pods it rolls)
golden: venv
	PULP_OPERATOR_UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/unit/test_golden.py

lint: venv
	$(BIN)/ruff check src tests devcluster generate bench
	$(BIN)/ruff format --check src tests devcluster generate bench
	$(BIN)/lint-imports
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: venv testbin tools
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

e2e: venv testbin nodebin images tools slapd services
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

# Lint, the unit tier, the builds side by side, the API-server/cluster tiers beside the builds the
# real node needs, then the real-node tier (hack/test.sh; TEST_SEQUENTIAL=1 for one at a time)
test:
	PYTEST_ARGS="$(PYTEST_ARGS)" bash hack/test.sh

# Speed, memory and API requests of the operator (about 20 minutes; not part of `make test`)
bench: venv testbin
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The demo's builds side by side (its images are those of the current release only)
demo: venv
	$(MAKE) --no-print-directory -j3 testbin nodebin demo-images
	bash hack/demo.sh

demo-images:
	bash hack/images/build.sh pulp-minimal pulp-web postgres redis pause

demo-down:
	bash hack/demo.sh down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .deploy
