"""Fixtures of the tests against a real etcd (``tests/etcd``, ``tests/faces``, ``tests/cli``),
loaded by the root ``tests/conftest.py``: one server per test module, a fresh client per test,
and the runner of our command and of etcdctl against the module's server.

Tests that can share a server use distinct key prefixes instead of a pristine store; that keeps
the suite fast. A module that needs its own server flags defines its own ``server`` fixture (and
``client``, if its client needs options), which its tests then get instead of these.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

import puregrpc_etcd as etcd
from puregrpc_etcd.testing import EtcdServer

if TYPE_CHECKING:
    from cli_support import Runner


@pytest.fixture(scope="module")
def server() -> Iterator[EtcdServer]:
    """A real etcd shared by the tests of one module (they use distinct key prefixes)."""
    with EtcdServer() as started:
        yield started


@pytest.fixture
async def client(server: EtcdServer) -> AsyncIterator[etcd.Client]:
    """A client of the module's server, closed after the test."""
    async with etcd.connect(server.endpoints) as connected:
        yield connected


@pytest.fixture
def cli(
    server: EtcdServer, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> Runner:
    """Runs our command and etcdctl against the module's server, without the caller's
    ``ETCDCTL_*`` environment."""
    # Beside the command's tests (tests/cli), on sys.path once pytest has imported them.
    from cli_support import Runner

    for name in list(os.environ):
        if name.startswith("ETCDCTL_"):
            monkeypatch.delenv(name)
    return Runner(server.endpoint, capsysbinary, monkeypatch)


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix of this test's own, so that tests can share one server."""
    return f"{request.node.name}/"
