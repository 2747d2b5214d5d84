"""A distributed lock shared by three workers, and its fencing token.

The lock uses the same keys as Go's concurrency.Mutex and `etcdctl lock`, so it also excludes
them. ``lock.revision`` grows with every holder: guard writes with it so that a holder that
lost the lock (say, paused too long) cannot overwrite a newer holder's work.

Run: python examples/lock.py [ENDPOINT]   (default: $ETCDCTL_ENDPOINTS, else 127.0.0.1:2379)
"""

from __future__ import annotations

import os
import sys

import trio

import puregrpc_etcd as etcd
from puregrpc_etcd import Compare, Op

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ETCDCTL_ENDPOINTS")
LOCK = "examples/lock/report"


async def worker(client: etcd.Client, name: str) -> None:
    async with client.lock(LOCK, ttl=10, timeout=30) as lock:
        print(name, "holds the lock; fencing token", lock.revision)
        guarded = await client.txn(
            compare=[Compare.create_revision(lock.key) == lock.revision],
            success=[Op.put("examples/lock/last_writer", name)],
        )
        assert guarded.succeeded
        await trio.sleep(0.2)
    print(name, "released it")


async def main() -> None:
    async with etcd.connect(ENDPOINT) as client:
        async with trio.open_nursery() as nursery:
            for name in ("worker-1", "worker-2", "worker-3"):
                nursery.start_soon(worker, client, name)
        async with client.try_lock(LOCK) as lock:
            print("try_lock when free:", lock is not None)
            # A second holder never waits: it gets None while the lock is taken.
            contender = await client.try_lock(LOCK)
            print("try_lock when taken:", contender)
        print("last writer:", await client.get_value("examples/lock/last_writer"))
        await client.delete("examples/lock/", prefix=True)


if __name__ == "__main__":
    trio.run(main)
