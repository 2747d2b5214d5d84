"""Fixtures shared by the real-etcd tests: one server per test module, a fresh client per test.

Tests that can share a server use unique key prefixes instead of a pristine store; that keeps
the suite fast. Modules that need their own server flags define their own ``server`` fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

import puregrpc_etcd as etcd
from puregrpc_etcd.testing import EtcdServer


@pytest.fixture(scope="module")
def server() -> Iterator[EtcdServer]:
    """A real etcd shared by the tests of one module."""
    with EtcdServer() as started:
        yield started


@pytest.fixture
async def client(server: EtcdServer) -> AsyncIterator[etcd.Client]:
    """A client of the module's server, closed after the test."""
    async with etcd.connect(server.endpoints) as connected:
        yield connected
