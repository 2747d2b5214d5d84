# The two commands of the README: `make demo` and `make test`. Each creates what it needs.
PYTHON ?= python3
PYPY ?= pypy3
VENV ?= .venv
VENV_PYPY ?= .venv-pypy
PYTEST_ARGS ?=

.PHONY: demo test test-pypy lint typecheck unit bench proto clean

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test,server]'
	touch $@

$(VENV_PYPY)/.installed: pyproject.toml
	test -x $(VENV_PYPY)/bin/python || $(PYPY) -m venv $(VENV_PYPY)
	$(VENV_PYPY)/bin/python -m pip install -q --upgrade pip
	$(VENV_PYPY)/bin/python -m pip install -q -e '.[test,server]'
	touch $@

# Runs a throwaway etcd and walks through every feature.
demo: $(VENV)/.installed
	$(VENV)/bin/python -m puregrpc_etcd demo

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

# ruff, mypy (strict on the package), then every test.
test: lint typecheck
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The same tests on PyPy 3.9 (Debian: apt-get install pypy3 pypy3-venv).
test-pypy: $(VENV_PYPY)/.installed
	$(VENV_PYPY)/bin/python -m pytest $(PYTEST_ARGS)

unit: $(VENV)/.installed
	$(VENV)/bin/python -m pytest tests/unit $(PYTEST_ARGS)

# Peers (aetcd, grpclib) live in their own venv so they never touch the test environment.
.venv-bench/.installed: pyproject.toml
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install -q --upgrade pip
	.venv-bench/bin/python -m pip install -q -e '.[bench,server]'
	touch $@

bench: .venv-bench/.installed
	-$(MAKE) $(VENV_PYPY)/.installed && $(VENV_PYPY)/bin/python -m pip install -q grpclib
	.venv-bench/bin/python -m bench $(BENCH_ARGS)

# Regenerate puregrpc_etcd/_proto from schema/ with the pinned protoc.
proto:
	$(PYTHON) schema/generate.py

clean:
	rm -rf $(VENV) $(VENV_PYPY) .mypy_cache .ruff_cache .pytest_cache .hypothesis
