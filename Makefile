# eopack — the two commands users need are `make demo` and `make test`; both set themselves up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.12: pyenv's copy when the machine has one, else uv downloads it.
PYENV_312 := $(lastword $(sort $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12)))
export UV_PYTHON ?= $(if $(PYENV_312),$(PYENV_312),3.12)
# uv honours the system CA store (TLS-intercepting proxies).
export UV_NATIVE_TLS ?= 1
UV ?= $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.cache/uv/bin/uv)
RUN := $(UV) run --frozen --no-sync

.PHONY: help setup demo test check lint clean stac-up stac-down gateway-up gateway-down wes-up wes-down slurm-up slurm-down

help: ## Show the targets
	@grep -hE '^[a-z][a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

setup: .venv/.synced ## Install system packages, uv and the locked environment

.venv/.synced: pyproject.toml uv.lock $(wildcard tools/*/pyproject.toml) scripts/bootstrap.sh
	@UV="$(UV)" bash scripts/bootstrap.sh
	$(UV) sync --frozen
	@touch $@

demo: setup ## Run the main job on built-in defaults and print where the outputs are
	$(RUN) python scripts/demo.py

test: check ## ruff, mypy, `eopack validate`, then the whole test suite (starts the services it needs)
	$(RUN) pytest --durations=40

check: setup ## The static checks `make test` starts with: ruff, mypy, `eopack validate`
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) eopack validate

lint: check ## `make check`, and the GitHub workflow files against their schema
	$(RUN) check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

stac-up: setup ## Start the local STAC API (pgstac + stac-fastapi + asset server); prints its URL
	$(RUN) eopack stac up

stac-down: setup ## Stop the local STAC API started by stac-up
	$(RUN) eopack stac down

gateway-up: setup ## Start a local Dask Gateway (state in runs/services/gateway); prints its URL
	$(RUN) eopack gateway up

gateway-down: ## Stop the local Dask Gateway and every cluster it runs
	$(RUN) eopack gateway down

wes-up: setup ## Start the local Toil WES endpoint (redis, celery, toil server, nginx auth); prints its URL
	$(RUN) eopack wes up

wes-down: ## Stop the local Toil WES endpoint (queued runs wait in Redis for the next wes-up)
	$(RUN) eopack wes down

bench: setup ## Run the benchmarks (JSON + plot in benchmarks/results/)
	$(RUN) python benchmarks/run.py

slurm-up: setup ## Start a single-node Slurm on loopback (installs slurm-wlm+munge as root; runs/services/slurm)
	$(RUN) eopack slurm up

slurm-down: ## Stop the local Slurm started by slurm-up
	$(RUN) eopack slurm down

clean: ## Remove runs, caches and the environment
	rm -rf runs .venv .cache .pytest_cache .mypy_cache .ruff_cache

# ---- containers and releases (DESIGN.md §5; docs/adr/0003-container-builds.md)
.PHONY: docker-up docker-down base-image images registry-up registry-down release
REGISTRY ?= 127.0.0.1:5000

docker-up: setup ## Start dockerd (as root) unless a Docker daemon already answers
	$(RUN) eopack docker up

docker-down: ## Stop the dockerd that eopack started (never someone else's)
	$(RUN) eopack docker down

base-image: docker-up ## Build debian:trixie-slim with debootstrap when it is missing
	bash scripts/base-image.sh trixie

images: base-image ## Build every package image eopack/<app>:<version> (APPS="a b" for some)
	$(RUN) eopack images build $(APPS)

registry-up: setup ## Start a local image registry on 127.0.0.1:5000 (state in runs/services/registry)
	$(RUN) eopack registry up

registry-down: ## Stop the local image registry
	$(RUN) eopack registry down

release: images ## Push to $(REGISTRY) and write dist/<app>.<version>.cwl pinned by digest (APPS=...)
	$(RUN) eopack release --registry $(REGISTRY) $(APPS)
