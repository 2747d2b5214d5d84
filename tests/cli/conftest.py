"""Fixtures of the command's tests: one etcd per test module, shared by its tests through
per-test key prefixes, and the runner of our command and of etcdctl against it."""

from __future__ import annotations

import os
from typing import Iterator

import pytest
from cli_support import Runner

from puregrpc_etcd.testing import EtcdServer


@pytest.fixture(scope="module")
def server() -> Iterator[EtcdServer]:
    with EtcdServer() as etcd_server:
        yield etcd_server


@pytest.fixture
def cli(
    server: EtcdServer, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> Runner:
    for name in list(os.environ):
        if name.startswith("ETCDCTL_"):
            monkeypatch.delenv(name)
    return Runner(server.endpoint, capsysbinary, monkeypatch)


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix of this test's own, so that tests can share one server."""
    return f"{request.node.name}/"
