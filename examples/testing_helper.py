"""Testing your own code against a real etcd with ``puregrpc_etcd.testing``.

``EtcdServer`` starts etcd on free loopback ports in a temporary directory and stops it by pid;
``EtcdCluster(size=3)`` does the same for a cluster. With the package installed, pytest also
gets the fixtures ``etcd_server`` and ``etcd_cluster``::

    async def test_config_reload(etcd_server):
        async with etcd.connect(etcd_server.endpoints) as client:
            ...

This script starts its own server (the argument, if any, is ignored) and runs such a test.
Run: python examples/testing_helper.py
"""

from __future__ import annotations

import trio

import puregrpc_etcd as etcd
from puregrpc_etcd.testing import EtcdServer


async def feature_flag(client: etcd.Client, name: str) -> bool:
    """The code under test: a feature flag read from etcd."""
    return await client.get_value(f"flags/{name}") == b"on"


async def test_feature_flag() -> None:
    async with EtcdServer() as server, etcd.connect(server.endpoints) as client:
        assert not await feature_flag(client, "search")
        await client.put("flags/search", "on")
        assert await feature_flag(client, "search")
        server.kill()  # the server dies: calls fail with a typed error, never hang forever
        try:
            await client.get("flags/search", timeout=2)
        except etcd.EtcdError as exc:
            print("with the server down:", type(exc).__name__)
        server.restart()  # same data directory: the flag survived
        assert await feature_flag(client, "search")
    print("test passed; the server and its directory are gone")


if __name__ == "__main__":
    trio.run(test_feature_flag)
