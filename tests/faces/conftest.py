"""Fixtures of the asyncio and blocking faces' tests: one real etcd per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from puregrpc_etcd.testing import EtcdServer


@pytest.fixture(scope="module")
def server() -> Iterator[EtcdServer]:
    """A real etcd shared by the tests of one module (they use distinct key prefixes)."""
    with EtcdServer() as started:
        yield started
