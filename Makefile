# The only entry points. Each target installs what it needs first (uv, then the locked deps).
SHELL := /bin/bash
PYTHON ?= python3
# uv from PATH, else a private copy in .tools/ (installed with pip into its own venv).
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)

.PHONY: help setup system-deps demo test test-sqlite test-postgres lint bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

# Bytecode compiled up front: where PYTHONDONTWRITEBYTECODE is set (as on CI machines) every
# process would otherwise compile its imports anew, and the suite starts hundreds of them.
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode
	@touch $@

setup: .venv/.synced  ## install Steward and its dev tools into .venv
	@$(UV) run --frozen python -m compileall -q -j 0 src >/dev/null

system-deps:  ## install (as root) or name the system programs the tests drive: PostgreSQL, curl, Chromium…
	@scripts/system-deps

demo: setup  ## build the demo consortium in ./.steward and print its reports
	$(UV) run --frozen steward demo

test: setup system-deps  ## run every test (SQLite and a throwaway PostgreSQL)
	$(UV) run --frozen pytest -q -n auto  # one process per core (pytest-xdist)

test-sqlite: setup  ## only the SQLite half of the suite
	$(UV) run --frozen pytest -q -n auto -m "not postgres"

lint: setup  ## ruff, mypy --strict on src/, and the layering contract
	$(UV) run --frozen ruff check src tests benchmarks
	$(UV) run --frozen ruff format --check src tests benchmarks
	$(UV) run --frozen mypy
	$(UV) run --frozen lint-imports

bench: setup  ## benchmarks (prints figures; see docs/performance.md; push and crawl need rclone)
	$(UV) run --frozen python benchmarks/ledger.py; a=$$?; \
	$(UV) run --frozen python benchmarks/packages.py; b=$$?; \
	$(UV) run --frozen python benchmarks/crawl.py --million; c=$$?; \
	exit $$(( a || b || c ))

clean:  ## remove the virtualenv and local state
	rm -rf .venv .steward .pytest_cache .mypy_cache .ruff_cache
