# Bulwark: `make dev` runs the suite locally, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PROTO_OUT := libs/common/src
PROTOS := $(shell find proto -name '*.proto' | sort)

.PHONY: help uv sync dev test browser promtool wrk lint fmt proto proto-check bench faults soak fuzz clean admin check-tools images base-image manifests \
  e2e-containers kind-up kind-load deploy e2e-kind kind-down kind

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

uv: ## install uv into .tools/ when it is not on PATH
	@if [ ! -x "$(UV)" ]; then \
	  echo "uv not found on PATH: installing it into .tools/ with pip"; \
	  python3 -m venv .tools && .tools/bin/pip install -q uv || { \
	    echo "error: could not install uv. Install it yourself: https://docs.astral.sh/uv/ (pip install uv)"; exit 1; }; \
	fi

sync: uv ## create .venv from uv.lock, with bytecode
	@$(UV) sync --frozen --all-packages --quiet
	@# Bytecode up front: where PYTHONDONTWRITEBYTECODE is set (this CI's environment) every
	@# service start would compile its imports again (api: 7.4 s instead of 2.6 s). Some
	@# packages ship files that do not compile (templates, py2 samples): not an error here.
	@if [ ! .venv/.bytecode -nt uv.lock ]; then \
	  .venv/bin/python -m compileall -q -j 0 .venv/lib >/dev/null 2>&1; touch .venv/.bytecode; fi
	@.venv/bin/python -m compileall -q libs/common/src services/*/src tools/devstack/src >/dev/null

dev: sync ## run users, auth and api in the foreground (Ctrl-C stops all)
	@$(UV) run --frozen bulwark-dev

test: sync proto-check check-tools browser promtool ## run every test (unit, integration, e2e, browser, chart and image checks)
	@$(UV) run --frozen pytest $(PYTEST_ARGS)

lint: sync ## ruff and mypy
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .
	@$(UV) run --frozen mypy libs/common/src services/*/src tools/devstack/src

fmt: sync ## format and fix what ruff can
	@$(UV) run --frozen ruff format .
	@$(UV) run --frozen ruff check --fix .

proto: sync ## regenerate the gRPC stubs from proto/
	@$(UV) run --frozen python -m grpc_tools.protoc -Iproto --python_out=$(PROTO_OUT) \
	  --pyi_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) $(PROTOS)
	@echo "generated stubs for: $(PROTOS)"

proto-check: sync ## fail when the committed stubs differ from what proto/ generates
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(UV) run --frozen python -m grpc_tools.protoc -Iproto --python_out=$$tmp \
	  --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTOS) && \
	for f in $$(cd $$tmp && find . -type f); do \
	  cmp -s $$tmp/$$f $(PROTO_OUT)/$$f || { echo "stale gRPC stub: $(PROTO_OUT)/$$f (run: make proto)"; exit 1; }; \
	done

bench: sync wrk ## benchmarks (login rate vs raw argon2id; api hot path)
	@$(UV) run --frozen python -m bulwark_devstack.bench

faults: sync ## stop, start and slow each dependency under a mixed load; table in .data/faults/
	@$(UV) run --frozen python -m bulwark_devstack.faults $(FAULTS_ARGS)

soak: sync ## 30 min of mixed load at 60 % of capacity; CSV, plots and verdicts in .data/soak/
	@$(UV) run --frozen python -m bulwark_devstack.soak $(SOAK_ARGS)

fuzz: sync ## schemathesis over api's OpenAPI against a local stack
	@$(UV) run --frozen pytest tests/e2e/test_e2e_fuzz.py

browser: ## Debian's chromium for the browser tests (apt-get when missing; says what to install when it cannot)
	@bash tools/checks/apt-install.sh /usr/bin/chromium "the browser tests" chromium fonts-liberation

promtool: ## promtool (Debian prometheus) for the metrics and alert-rule checks
	@bash tools/checks/apt-install.sh promtool "the metrics checks" prometheus

wrk: ## wrk (Debian) for the benchmarks' load generator
	@bash tools/checks/apt-install.sh wrk "make bench" wrk

check-tools: ## helm, kubectl and the deploy checkers into .tools/ (pinned, hash-verified)
	@bash tools/checks/install.sh

images: ## build the three service images (docker, else podman) and print their sizes
	@bash deploy/images/images.sh build

base-image: ## build the local Python base (debootstrap) for when python:3.11-slim cannot be pulled
	@bash deploy/images/images.sh base

e2e-containers: sync check-tools images ## the chart's pods under podman + e2e suite + container checks, then removed
	@$(UV) run --frozen python deploy/podman/e2e_containers.py $(PYTEST_ARGS)

kind-up: ## kind path: create the kind cluster (deploy/kind/kind.sh; needs kind >= v0.24, docker or podman)
	@bash deploy/kind/kind.sh up

kind-load: ## kind path: load the three images into the cluster
	@bash deploy/kind/kind.sh load

deploy: check-tools ## kind path: install the chart (values-kind + values-e2e), wait, create the e2e admin
	@bash deploy/kind/kind.sh deploy

e2e-kind: sync ## kind path: e2e suite through port-forward, then the cluster-only checks
	@bash deploy/kind/kind.sh e2e

kind-down: ## kind path: delete the cluster
	@bash deploy/kind/kind.sh down

kind: sync check-tools ## kind path, all of it: up, images, load, deploy, e2e, down
	@bash deploy/kind/kind.sh all

manifests: check-tools ## render deploy/k8s/ plain manifests from the chart
	@bash deploy/k8s/render.sh

clean: ## remove the local environment and data
	rm -rf .venv .tools .data

admin: sync ## create an admin in the running `make dev` stack: make admin USERNAME=.. EMAIL=.. (password from stdin)
	@test -f .data/dev.env || { echo "make admin: start the stack first (make dev, in another terminal)"; exit 1; }
	@test -n "$(USERNAME)" -a -n "$(EMAIL)" || { echo "usage: make admin USERNAME=admin EMAIL=admin@example.com"; exit 2; }
	@set -a && . ./.data/dev.env && set +a && .venv/bin/bulwark-users create-admin --username "$(USERNAME)" --email "$(EMAIL)"
