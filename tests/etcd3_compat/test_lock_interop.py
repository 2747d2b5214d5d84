"""python-etcd3 itself and ``puregrpc_etcd.etcd3`` exclude each other with one lock.

The real python-etcd3 (grpcio) runs in a subprocess with protobuf's pure-Python runtime (its
generated code predates protobuf 4); this process keeps the upb runtime.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time

import pytest

from puregrpc_etcd import etcd3
from puregrpc_etcd.testing import EtcdServer

pytestmark = pytest.mark.skipif(
    platform.python_implementation() != "CPython",
    reason="python-etcd3 needs grpcio, which has no PyPy wheel",
)

# The peer: python-etcd3 driven line by line on stdin; it answers each command on stdout.
_PEER = r"""
import sys, time, etcd3
host, port = sys.argv[1], int(sys.argv[2])
client = etcd3.client(host=host, port=port, timeout=10)
lock = client.lock("interop", ttl=10)
print("ready", lock.key, flush=True)
for line in sys.stdin:
    command = line.split()
    if command[0] == "try":
        print(lock.acquire(timeout=0), flush=True)
    elif command[0] == "wait":
        print(lock.acquire(timeout=float(command[1])), flush=True)
    elif command[0] == "release":
        print(lock.release(), flush=True)
    elif command[0] == "count":
        for _ in range(int(command[1])):
            assert lock.acquire(timeout=30)
            value, _ = client.get("/counter")
            time.sleep(0.02)
            client.put("/counter", str(int(value or 0) + 1))
            lock.release()
        print("counted", flush=True)
    else:
        break
"""


class _Peer:
    def __init__(self, endpoint: str) -> None:
        host, port = endpoint.rsplit(":", 1)
        env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
        self.process = subprocess.Popen(
            [sys.executable, "-c", _PEER, host, port],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.answer = self._read(30.0)

    def _read(self, timeout: float) -> str:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.process.stdout.readline()))
        reader.daemon = True
        reader.start()
        reader.join(timeout)
        if not lines or not lines[0]:
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
            pytest.fail(f"python-etcd3 gave no answer within {timeout} s: {err[-2000:]}")
        return lines[0].strip()

    def ask(self, command: str, timeout: float = 30.0) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)


@pytest.fixture
def server():
    with EtcdServer() as server:
        yield server


@pytest.fixture
def peer(server):
    peer = _Peer(server.endpoint)
    yield peer
    peer.close()


def _client(server: EtcdServer) -> etcd3.Etcd3Client:
    host, port = server.endpoint.rsplit(":", 1)
    return etcd3.client(host=host, port=int(port), timeout=10)


def test_same_key_layout(server, peer):
    with _client(server) as client:
        assert peer.answer == f"ready {client.lock('interop').key}"
        assert client.lock("interop").key == "/locks/interop"


def test_locks_exclude_each_other(server, peer):
    with _client(server) as client:
        ours = client.lock("interop", ttl=10)
        assert ours.acquire(timeout=5) is True
        assert peer.ask("try") == "False"

        # python-etcd3 waits for our release, and gets the lock when it comes.
        release = threading.Timer(0.5, ours.release)
        release.start()
        started = time.monotonic()
        assert peer.ask("wait 20") == "True"
        assert time.monotonic() - started >= 0.4
        release.join()

        assert ours.acquire(timeout=0) is False
        assert ours.is_acquired() is False
        waiter = threading.Thread(target=lambda: results.append(ours.acquire(timeout=20)))
        results: list[bool] = []
        waiter.start()
        time.sleep(0.3)
        assert results == []  # still held by python-etcd3
        assert peer.ask("release") == "True"
        waiter.join(20)
        assert results == [True]
        assert ours.is_acquired() is True
        assert peer.ask("try") == "False"
        assert ours.release() is True


def test_contended_counter(server, peer):
    """Two threads on this module and one python-etcd3 process increment one counter by a
    read, a pause and a write, each under the lock: no increment is lost."""
    rounds = 5
    with _client(server) as client:
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                lock = client.lock("interop", ttl=10)
                for _ in range(rounds):
                    assert lock.acquire(timeout=30)
                    value, _ = client.get("/counter")
                    time.sleep(0.02)
                    client.put("/counter", str(int(value or 0) + 1))
                    assert lock.release()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        assert peer.ask(f"count {rounds}", timeout=60) == "counted"
        for thread in threads:
            thread.join(60)
        assert not errors
        assert client.get("/counter")[0] == str(3 * rounds).encode()
