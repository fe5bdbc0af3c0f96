# Outpost: one entry point for developers and CI. Every target starts with `install`, which
# bootstraps uv when it is missing (into .outpost/tools) and syncs the locked environment.

SHELL := /bin/bash
.DEFAULT_GOAL := help

TOOLS_DIR := .outpost/tools
UV ?= $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/$(TOOLS_DIR)/bin/uv)
RUN := $(UV) run --frozen
PYTEST := $(RUN) pytest -p no:cacheprovider -q
SRC_DIRS := $(wildcard libs/*/src services/*/src)
# Each src/ is a package base, so modules are named outpost_x... and not libs.x.src.outpost_x.
MYPYPATH := $(subst $(eval) ,:,$(SRC_DIRS))

# pytest exits 5 when a marker selects no tests: not a failure for a layer with none yet.
define pytest_layer
	@set +e; $(PYTEST) $(1); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "(no tests selected by: $(1))"; exit 0; fi; exit $$rc
endef

.PHONY: help install dev test test-unit test-integration test-e2e test-containers chaos lint check-deploy fmt bench

help:
	@echo "make dev | test | test-unit | test-integration | test-e2e | test-containers | chaos | lint | check-deploy | fmt | bench | install"

install:
	@if [ ! -x "$(UV)" ]; then \
		echo "uv not found: installing it into $(TOOLS_DIR)"; \
		if python3 -m venv "$(TOOLS_DIR)" >/dev/null 2>&1; then \
			"$(TOOLS_DIR)/bin/python" -m pip install --quiet --disable-pip-version-check uv; \
		else \
			python3 -m pip install --quiet --user --break-system-packages uv 2>/dev/null \
				|| python3 -m pip install --quiet --user uv; \
			mkdir -p "$(TOOLS_DIR)/bin"; \
			ln -sf "$$(python3 -m site --user-base)/bin/uv" "$(TOOLS_DIR)/bin/uv"; \
		fi; \
	fi
	@$(UV) sync --frozen --quiet

dev: install
	$(RUN) outpost-dev up

test: lint check-deploy test-unit test-integration test-e2e

test-unit: install
	$(call pytest_layer,-m unit)

test-integration: install
	$(call pytest_layer,-m integration)

test-e2e: install
ifeq ($(wildcard tests/e2e),)
	@echo "(no tests/e2e yet)"
else
	@bash tools/browser.sh  # Debian's chromium + chromium-driver for the console's browser test
	$(call pytest_layer,-m e2e tests/e2e)
endif

# The images built from the Dockerfile and docker-compose.yml run in real containers, once
# alone and once with docker-compose.scale.yml, tested through the published ports
# (tests/containers, marker `containers`; decision 80). Installs and starts Debian's engine
# where none answers (root), and stops only what it started. Not part of `make test`.
test-containers: install
	bash tools/containers.sh $(CONTAINERS_ARGS)

# The chaos tests alone (kill -9 nats-server, immediate Postgres stops; docs/design/reliability.md).
# They are part of test-integration / test-e2e too, where they run last (outpost_devkit.testing).
CHAOS_TESTS = $(shell find libs services tests -name '*_chaos.py' -not -path '*/.venv/*' | sort)

chaos: install
	$(PYTEST) -m "integration or e2e" $(CHAOS_TESTS)

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	MYPYPATH=$(MYPYPATH) $(RUN) mypy $(SRC_DIRS)
	$(RUN) python tools/check_boundaries.py
	$(RUN) python tools/sql_in_app.py --check
	$(RUN) python tools/check_doc_links.py

# The deployment files, offline (docs/operations.md): the Dockerfile (hadolint + structure),
# docker-compose.yml against the compose specification's schema and the settings structs,
# nats.conf through `nats-server -t`, and `kubectl kustomize` of each deploy/k8s overlay
# validated against the Kubernetes schemas. Needs kubectl; fails, never skips, without it.
check-deploy: install
	$(RUN) python tools/check_deploy.py

fmt: install
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

bench: install
	@shopt -s nullglob; benches=(bench/*.py); \
	if [ $${#benches[@]} -eq 0 ]; then echo "no benchmarks yet (bench/*.py)"; exit 0; fi; \
	for bench in "$${benches[@]}"; do echo "== $$bench"; $(RUN) python "$$bench" || exit 1; done
