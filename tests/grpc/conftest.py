"""Fixtures for the transport's interop tests: grpcio test servers in child processes.
grpcio has no PyPy wheels, so there these tests skip (the etcd tests cover the transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from interop_support import InteropServer, require_grpcio

from puregrpc_etcd import grpc as pg


@pytest.fixture(scope="module")
def interop_server() -> Iterator[InteropServer]:
    """One stock server shared by a module's tests; tests must not stop it."""
    require_grpcio()
    server = InteropServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def start_interop_server() -> Iterator[Callable[..., InteropServer]]:
    """Starts servers of a test's own (with options, or to kill); all are killed afterwards."""
    require_grpcio()
    started: list[InteropServer] = []

    def start(*extra_args: str) -> InteropServer:
        server = InteropServer(*extra_args)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture
async def channel(interop_server: InteropServer) -> AsyncIterator[pg.Channel]:
    async with pg.Channel([interop_server.address]) as channel:
        yield channel
