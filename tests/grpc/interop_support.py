"""Shared parts of the interop tests: the grpcio server process, the fault suites' loopback TCP
proxy (``FaultProxy``), and small helpers to call the test service with our transport."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

import pytest
import trio
from _pb import interop_pb2 as pb
from fault_proxy import FaultProxy  # noqa: F401  (re-exported for the interop tests)

from puregrpc_etcd import grpc as pg

SERVER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interop_server.py")
# A namespace package (a directory named grpc on sys.path, such as tests/grpc) has no origin.
_GRPC_SPEC = importlib.util.find_spec("grpc")
GRPCIO_AVAILABLE = _GRPC_SPEC is not None and _GRPC_SPEC.origin is not None
SERVICE = "puregrpc.testing.TestService"
ECHO_INITIAL_KEY = "x-grpc-test-echo-initial"
ECHO_TRAILING_KEY = "x-grpc-test-echo-trailing-bin"
CALL_ID_KEY = "x-call-id"
PAYLOAD_DIGEST_KEY = "x-payload-sha256"
SERVER_START_TIMEOUT = 20.0


def require_grpcio() -> None:
    if not GRPCIO_AVAILABLE:
        pytest.skip("grpcio (the interop test server) is CPython-only")


def method(name: str, service: str = SERVICE) -> str:
    return f"/{service}/{name}"


class InteropServer:
    """The grpcio test server in a child process, stopped by its pid.

    `extra_args` go to interop_server.py (`--max-concurrent-streams N`, ...). `restart()` binds the
    same port again, as a server that comes back after a crash would."""

    def __init__(self, *extra_args: str) -> None:
        self.extra_args = extra_args
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None, "already running"
        # A freshly killed server's port can take a moment to be bindable again.
        for _attempt in range(50):
            process = subprocess.Popen(
                [sys.executable, SERVER_SCRIPT, "--port", str(self.port), *self.extra_args],
                stdout=subprocess.PIPE,
            )
            port = self._read_port(process)
            if port is not None:
                self.process, self.port = process, port
                return
            process.kill()
            process.wait()
            if self.port == 0:
                break
            time.sleep(0.1)
        raise RuntimeError("the interop server did not start (its stderr is above)")

    @staticmethod
    def _read_port(process: subprocess.Popen[bytes]) -> int | None:
        assert process.stdout is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([process.stdout], [], [], remaining)
            if readable:
                chunk = os.read(process.stdout.fileno(), 64)
                if not chunk:
                    return None
                line += chunk
        return int(line)

    def kill(self) -> None:
        """SIGKILL: the server vanishes without GOAWAY, as a crashed process does."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            assert self.process.stdout is not None
            self.process.stdout.close()
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()


def unused_loopback_port() -> int:
    """A port nothing listens on, so connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def metadata_value(metadata: Sequence[tuple[str, str | bytes]] | None, key: str) -> str | bytes:
    values = [value for name, value in metadata or () if name == key]
    assert len(values) == 1, f"expected one {key!r} in {metadata!r}"
    return values[0]


def output_request(*sizes: int, interval_us: int = 0) -> pb.StreamingOutputCallRequest:
    return pb.StreamingOutputCallRequest(
        response_parameters=[
            pb.ResponseParameters(size=size, interval_us=interval_us) for size in sizes
        ]
    )


async def send_then_receive(
    stream: pg.Stream[pb.StreamingOutputCallResponse], request: pb.StreamingOutputCallRequest
) -> pb.StreamingOutputCallResponse | None:
    """One request, then one reply. If the call fails meanwhile, the error may come from the
    send: the transport raises a call's final error from a send that races with its end."""
    await stream.send_message(request)
    return await stream.receive_message()


async def stream_output(
    channel: pg.Channel, sizes: list[int], *, pause_every: int = 0
) -> tuple[list[int], str, str | bytes]:
    """Asks StreamingOutputCall for messages of `sizes`; returns the sizes received, the
    sha256 of all bodies, and the sha256 the server reported in its trailing metadata."""
    received: list[int] = []
    digest = hashlib.sha256()
    async with channel.stream(
        method("StreamingOutputCall"), pb.StreamingOutputCallResponse
    ) as stream:
        await stream.send_message(output_request(*sizes))
        await stream.done_writing()
        async for reply in stream:
            received.append(len(reply.payload.body))
            digest.update(reply.payload.body)
            if pause_every and len(received) % pause_every == 1:
                await trio.sleep(0.2)
    return (
        received,
        digest.hexdigest(),
        metadata_value(stream.trailing_metadata, PAYLOAD_DIGEST_KEY),
    )


async def call_outcome(channel: pg.Channel, call_id: str) -> str:
    reply = await channel.unary_unary(
        method("GetCallOutcome"),
        pb.CallOutcomeRequest(call_id=call_id),
        pb.CallOutcome,
        timeout=5.0,
    )
    return reply.state


async def wait_for_outcome(channel: pg.Channel, call_id: str, *states: str) -> str:
    """Polls the server until the call tagged `call_id` reaches one of `states`."""
    state = "unknown"
    with trio.fail_after(10):
        for _attempt in range(1000):
            state = await call_outcome(channel, call_id)
            if state in states:
                return state
            await trio.sleep(0.01)
    raise AssertionError(f"call {call_id} stayed {state!r}, expected one of {states}")


async def assert_channel_works(channel: pg.Channel) -> None:
    with trio.fail_after(10):
        reply = await channel.unary_unary(method("EmptyCall"), pb.Empty(), pb.Empty, timeout=5.0)
    assert reply == pb.Empty()
