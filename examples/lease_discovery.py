"""Service registration on a lease, and discovery by prefix.

An instance's key lives on a lease kept alive by the client; when the instance stops (or
crashes and stops renewing), the key disappears and discovery stops returning it.

Run: python examples/lease_discovery.py [ENDPOINT]   (default: $ETCDCTL_ENDPOINTS)
"""

from __future__ import annotations

import json
import os
import sys

import trio

import puregrpc_etcd as etcd

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ETCDCTL_ENDPOINTS")
SERVICES = "examples/lease_discovery/api/"


async def discover(client: etcd.Client) -> list[str]:
    found = await client.get_prefix(SERVICES)
    return sorted(json.loads(kv.value)["address"] for kv in found.values())


async def main() -> None:
    async with etcd.connect(ENDPOINT) as client:
        async with client.lease(10) as lease:  # renewed every ttl/3 in the background
            await client.put_json(SERVICES + "a", {"address": "10.0.0.1:80"}, lease=lease.id)
            print("registered under lease", hex(lease.id), "ttl", lease.ttl)
            print("discovered:", await discover(client))
            status = await client.time_to_live(lease.id, keys=True)
            print("lease keys:", status.keys, "remaining", status.ttl, "s")
        print("after stopping:", await discover(client))  # the lease was revoked on exit

        # A lease that is granted but not kept alive expires by itself.
        short = await client.grant(2)
        put = await client.put_json(SERVICES + "b", {"address": "10.0.0.2:80"}, lease=short.id)
        print("before expiry:", await discover(client))
        watch_from = put.header.revision + 1
        async with client.watch(SERVICES, prefix=True, start_revision=watch_from) as events:
            with trio.fail_after(15):
                async for event in events:
                    if event.is_delete:
                        print("expired:", event.kv.key)
                        break
        print("discovered:", await discover(client))


if __name__ == "__main__":
    trio.run(main)
