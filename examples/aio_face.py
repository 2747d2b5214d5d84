"""The asyncio face: service registration on a lease, discovery by watch, and a deadline set
with asyncio (``puregrpc_etcd.aio``; the trio client runs in a thread it owns).

Run: python examples/aio_face.py [ENDPOINT]   (default: $ETCDCTL_ENDPOINTS)
"""

from __future__ import annotations

import asyncio
import os
import sys

from puregrpc_etcd import aio

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ETCDCTL_ENDPOINTS")
SERVICES = "examples/aio_face/api/"


async def register(client: aio.Client, name: str, address: str, ready: asyncio.Event) -> None:
    async with client.lease(10) as lease:  # kept alive in the client's thread
        await client.put(SERVICES + name, address, lease=lease.id)
        ready.set()
        await asyncio.sleep(0.2)
    # Leaving the block revoked the lease, and with it the key.


async def main() -> None:
    async with aio.connect(ENDPOINT) as client:
        async with client.watch(SERVICES, prefix=True) as events:
            ready = asyncio.Event()
            instance = asyncio.ensure_future(register(client, "a", "10.0.0.1:80", ready))
            async for event in events:
                print(event.type, event.kv.key.decode(), event.kv.value.decode())
                if event.type == "delete":
                    break
            await instance

        # Cancelling a task cancels its call on the wire; the client stays usable.
        async def take_lock() -> None:
            async with client.lock(SERVICES + "lock"):
                print("took the lock?!")

        async with client.lock(SERVICES + "lock"):
            try:
                await asyncio.wait_for(take_lock(), 0.3)
            except asyncio.TimeoutError:
                print("gave up waiting for the lock after 0.3 s")
        print("still connected:", await client.get_value(SERVICES + "a") is None)


if __name__ == "__main__":
    asyncio.run(main())
