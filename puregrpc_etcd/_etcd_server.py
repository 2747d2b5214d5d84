"""One etcd server process for tests: ``EtcdServer`` (exported by ``puregrpc_etcd.testing``)
and what it shares with ``EtcdCluster`` there: free ports, the temporary root, the sync and
async context managers, the set of live servers stopped at exit, and log tails."""

from __future__ import annotations

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._etcd_binary import EtcdStartError, etcd_version, find_etcd

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["EtcdServer"]

_STOP_TIMEOUT = 10.0
PORT_RETRIES = 3
LOG_TAIL_LINES = 60
live_servers: set[EtcdServer] = set()
# Servers started since the current test began (the pytest plugin names their etcd on failure).
started_in_test: list[EtcdServer] = []
_Self = TypeVar("_Self", bound="ManagedProcess")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def temp_root() -> str | None:
    # etcd fsyncs a lot; tmpfs keeps test servers fast where the machine has one.
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


class ManagedProcess:
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


class EtcdServer(ManagedProcess):
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
        self.client_port = free_port()
        self.peer_port = _peer_port or free_port()
        self.metrics_port = free_port()
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
            self._workdir = tempfile.mkdtemp(prefix="puregrpc-etcd-", dir=temp_root())
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

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the server's log."""
        return read_log_tail(self.log_path, lines, 0)

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
        live_servers.add(self)
        started_in_test.append(self)

    def start(self) -> EtcdServer:
        """Start etcd and wait until it serves requests (with a leader).

        A free port can be taken by another process between our probe and etcd's bind; a server
        of its own (not a cluster member) then retries on new ports.
        """
        for attempt in range(PORT_RETRIES):
            self.spawn()
            try:
                self.wait_ready()
                return self
            except EtcdStartError:
                if self._cluster is not None or attempt + 1 == PORT_RETRIES:
                    raise
                if not self._lost_a_port():
                    raise
                self.kill()
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.client_port, self.peer_port = free_port(), free_port()
                self.metrics_port = free_port()
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
            live_servers.discard(self)
            if self._owns_workdir and self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)


def read_log_tail(path: str, lines: int, start: int) -> str:
    """The last lines of a log from byte ``start`` on."""
    try:
        with open(path, "rb") as log:
            log.seek(start)
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def log_size(server: EtcdServer) -> int:
    try:
        return os.path.getsize(server.log_path)
    except OSError:
        return 0


@atexit.register
def _stop_leftovers() -> None:
    # A server whose owner forgot close() must not outlive the interpreter.
    for server in list(live_servers):
        server.kill()
        server.close()


# The pytest plugin (registered through the ``pytest11`` entry point).
