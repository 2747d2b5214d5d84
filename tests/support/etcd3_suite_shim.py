"""The shim that runs python-etcd3's own test suite (``tests/etcd3_suite/test_etcd3.py``, vendored
unchanged) against ``puregrpc_etcd.etcd3``; a plugin the root ``tests/conftest.py`` loads, whose
hooks act on that one module alone.

What it does, and nothing else:

- While pytest imports ``test_etcd3.py``, ``import etcd3`` (and ``etcd3.client``,
  ``etcd3.etcdrpc``, ...) gives ``puregrpc_etcd.etcd3`` and its submodules, and ``import grpc``
  gives a namespace with the library's ``RpcError`` (what the drop-in raises where python-etcd3
  lets a ``grpc.RpcError`` through) and ``StatusCode``. ``sys.modules`` is restored afterwards.
- It starts what python-etcd3's tox starts with pifpaf: a 3-member etcd cluster whose members
  are named ``pifpaf0..2``, with ``PYTHON_ETCD_HTTP_URL`` pointing at member 0, ``etcdctl``
  (the one next to the etcd binary) first on ``PATH``, ``TEST_ETCD_VERSION`` set to the
  server's release, and ``etcd3.client()`` without host and port reaching member 0 (pifpaf
  runs it on localhost:2379, which other processes on this machine may hold). The cluster
  lives as long as the module's tests, the environment as long as each test. These two fixtures
  are set on the suite's module when it is imported, so that they reach its tests alone (a
  plugin's own autouse fixtures would reach every test, and the suite stays unchanged).
- ``_out_quorum()`` stops the other two members by the pids of this run's processes, where the
  suite looks them up with ``pgrep -f 'pifpaf[12]'`` (which would also stop any other
  pifpaf-named etcd on the machine).
- Hypothesis runs ``PUREGRPC_ETCD3_SUITE_EXAMPLES`` examples per test (default 5, its own
  default is 100) and keeps no example database.
- Its tests carry the ``slow`` mark: the suite waits on the clock (leases and locks that
  expire, writers that sleep between puts) for about 80 of its ~100 seconds.
- The tests listed in ``NOT_APPLICABLE.md`` (they patch grpc internals or python-etcd3's
  private stubs) are deselected, each with the reason given there.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import signal
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from puregrpc_etcd import errors
from puregrpc_etcd.grpc import StatusCode
from puregrpc_etcd.testing import EtcdCluster, etcd_release, find_etcd, find_etcd_tool

HERE = Path(__file__).resolve().parent.parent / "etcd3_suite"
SUITE = HERE / "test_etcd3.py"

# Where the session's cluster is, for ``etcd3.client()`` without host and port.
_default_endpoint: dict[str, Any] = {}
_cluster: list[EtcdCluster] = []


def not_applicable() -> dict[str, str]:
    """``{"TestClass::test_name": reason}`` from NOT_APPLICABLE.md."""
    entries = {}
    for line in (HERE / "NOT_APPLICABLE.md").read_text().splitlines():
        match = re.match(r"- `(\w+::\w+)`: (.+)", line)
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


def _shim_modules() -> dict[str, types.ModuleType]:
    import puregrpc_etcd.etcd3 as ours

    facade = types.ModuleType("etcd3", ours.__doc__)
    facade.__dict__.update({k: v for k, v in vars(ours).items() if not k.startswith("__")})

    def client(*args: Any, **kwargs: Any) -> Any:
        if not args and "host" not in kwargs and "port" not in kwargs:
            kwargs.update(_default_endpoint)
        return ours.client(*args, **kwargs)

    facade.client = client  # type: ignore[attr-defined]
    grpc = types.ModuleType(
        "grpc", "The names test_etcd3.py takes from grpc, as this client has them."
    )
    grpc.RpcError = errors.RpcError  # type: ignore[attr-defined]
    grpc.StatusCode = StatusCode  # type: ignore[attr-defined]
    modules = {"etcd3": facade, "grpc": grpc}
    # Its submodules, ``etcd3.client`` included (as an attribute, ``client`` is the function).
    for name in (n for n in ours.__all__ if n.islower()):
        modules[f"etcd3.{name}"] = importlib.import_module(f"puregrpc_etcd.etcd3.{name}")
    return modules


@contextlib.contextmanager
def _shimmed_imports() -> Iterator[None]:
    modules = _shim_modules()
    saved = {name: sys.modules.get(name) for name in modules}
    saved_version = os.environ.get("TEST_ETCD_VERSION")
    sys.modules.update(modules)
    os.environ["TEST_ETCD_VERSION"] = "v" + etcd_release(find_etcd())
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        if saved_version is None:
            os.environ.pop("TEST_ETCD_VERSION", None)
        else:
            os.environ["TEST_ETCD_VERSION"] = saved_version


@contextlib.contextmanager
def _out_quorum() -> Iterator[None]:
    """The suite's ``_out_quorum``, by this run's pids: members 1 and 2 stopped."""
    pids = [m.pid for m in _cluster[0].members[1:] if m.pid is not None]
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def _adapt(module: types.ModuleType) -> None:
    from hypothesis import settings

    module._out_quorum = _out_quorum  # type: ignore[attr-defined]
    examples = int(os.environ.get("PUREGRPC_ETCD3_SUITE_EXAMPLES", "5"))
    for cls in vars(module).values():
        for name, test in list(vars(cls).items()) if isinstance(cls, type) else ():
            if getattr(test, "is_hypothesis_test", False):
                own = test._hypothesis_internal_use_settings
                setattr(cls, name, settings(own, max_examples=examples, database=None)(test))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[Any]:
    if not (isinstance(collector, pytest.Module) and collector.path == SUITE):
        yield
        return
    from hypothesis import settings

    # The suite registers and loads its own "default" profile on import: it stays its own.
    default = settings.get_profile("default")
    with _shimmed_imports():
        try:
            module = collector.obj  # imported now, so that its fixtures are there to be collected
        except (Exception, pytest.skip.Exception):
            module = None  # collecting imports it again, and reports why it fails
        else:
            vars(module).update(_suite_fixtures())
        outcome = yield
    settings.register_profile("default", default)
    settings.load_profile("default")
    if module is not None and outcome.get_result().passed:
        _adapt(module)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skipped = not_applicable()
    kept, deselected = [], []
    for item in items:
        if item.path != SUITE:
            kept.append(item)
        elif item.nodeid.split("::", 1)[1] in skipped:
            deselected.append(item)
        else:
            item.add_marker(pytest.mark.slow)
            kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


class _PifpafCluster(EtcdCluster):
    """An ``EtcdCluster`` whose members are named as pifpaf names them (the suite checks)."""

    def _build(self) -> None:
        super()._build()
        names = {member.name: f"pifpaf{index}" for index, member in enumerate(self.members)}
        for member in self.members:
            initial, token, state = member._cluster  # type: ignore[misc]
            for old, new in names.items():
                initial = initial.replace(f"{old}=", f"{new}=")
            member._cluster = (initial, token, state)
            member.name = names[member.name]


def _suite_fixtures() -> dict[str, Any]:
    """The suite's own fixtures, for its module's namespace (here, a plugin's autouse fixtures
    would reach every test of the run)."""

    @pytest.fixture(scope="module", autouse=True)
    def _pifpaf_like_cluster() -> Iterator[EtcdCluster]:
        with _PifpafCluster(3) as cluster:
            _cluster[:] = [cluster]
            host, port = cluster.members[0].endpoint.rsplit(":", 1)
            _default_endpoint.update(host=host, port=int(port))
            yield cluster
            _default_endpoint.clear()
            _cluster.clear()

    @pytest.fixture(autouse=True)
    def _pifpaf_like_environment(
        _pifpaf_like_cluster: EtcdCluster, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Per test, so that nothing of it outlives the suite.
        monkeypatch.setenv(
            "PYTHON_ETCD_HTTP_URL", f"http://{_pifpaf_like_cluster.members[0].endpoint}"
        )
        monkeypatch.setenv("ETCDCTL_API", "3")
        tools = os.path.dirname(find_etcd_tool("etcdctl"))
        monkeypatch.setenv("PATH", tools + os.pathsep + os.environ.get("PATH", ""))
        # The suite opens tests/ca.crt and friends relative to python-etcd3's checkout.
        monkeypatch.chdir(HERE)

    return {
        "_pifpaf_like_cluster": _pifpaf_like_cluster,
        "_pifpaf_like_environment": _pifpaf_like_environment,
    }
