"""Shared parts of the interop tests: the grpcio server process, a loopback TCP proxy that can
black-hole its connections, and small helpers to call the test service with our transport."""

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

from puregrpc_etcd import grpc as pg

SERVER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interop_server.py")
GRPCIO_AVAILABLE = importlib.util.find_spec("grpc") is not None
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


class BlackHoleProxy:
    """Forwards loopback TCP connections to a target port until `black_hole()` is called.

    From then on the connections open at that moment swallow everything and forward nothing,
    yet stay open: the peer sees silence, never a FIN or RST. Later connections forward again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.connections_seen = 0
        self._generation = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def black_hole(self) -> None:
        self._generation += 1

    async def serve(
        self, *, task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        await trio.serve_listeners(self._relay, listeners, task_status=task_status)

    async def _relay(self, client: trio.SocketStream) -> None:
        self.connections_seen += 1
        generation = self._generation
        try:
            server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        except OSError:
            await client.aclose()
            return
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, client, server, generation, nursery.cancel_scope)
            nursery.start_soon(self._pump, server, client, generation, nursery.cancel_scope)

    async def _pump(
        self,
        source: trio.SocketStream,
        sink: trio.SocketStream,
        generation: int,
        relay_scope: trio.CancelScope,
    ) -> None:
        try:
            while True:
                data = await source.receive_some(65536)
                if generation != self._generation:
                    # Keep reading and dropping, so the sender's socket buffers never fill up
                    # and tell it anything: a black hole, not a stalled peer. No FIN passes.
                    if not data:
                        await trio.sleep_forever()
                    continue
                if not data:
                    await sink.send_eof()
                    return
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # One side reset: end the relay, closing the other side too, as a router would.
            relay_scope.cancel()


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
