"""Fixtures of the transport's interop tests (``tests/grpc``), loaded by the root
``tests/conftest.py``: grpcio test servers in child processes, and a channel to one.
grpcio has no PyPy wheels, so there these tests skip (the etcd tests cover the transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from puregrpc_etcd import grpc as pg

if TYPE_CHECKING:
    from interop_support import InteropServer

# interop_support sits beside the interop tests (it needs their generated tests/grpc/_pb) and is
# on sys.path once pytest has imported them; the fixtures import it when they first run.


@pytest.fixture(scope="module")
def interop_server() -> Iterator[InteropServer]:
    """One stock server shared by a module's tests; tests must not stop it."""
    from interop_support import InteropServer, require_grpcio

    require_grpcio()
    server = InteropServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def start_interop_server() -> Iterator[Callable[..., InteropServer]]:
    """Starts servers of a test's own (with options, or to kill); all are killed afterwards."""
    from interop_support import InteropServer, require_grpcio

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
    """A channel to the module's stock server, closed after the test."""
    async with pg.Channel([interop_server.address]) as channel:
        yield channel
