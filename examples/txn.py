"""Transactions: compare-and-swap, and moving an amount between two counters atomically.

Run: python examples/txn.py [ENDPOINT]   (default: $ETCDCTL_ENDPOINTS, else 127.0.0.1:2379)
"""

from __future__ import annotations

import os
import sys

import trio

import puregrpc_etcd as etcd
from puregrpc_etcd import Compare, Op

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ETCDCTL_ENDPOINTS")
PREFIX = "examples/txn/"


async def transfer(client: etcd.Client, source: str, target: str, amount: int) -> None:
    """Move ``amount`` from one counter to another; retry if someone changed either meanwhile."""
    while True:
        reply = await client.get(PREFIX, prefix=True)
        counters = {kv.key.decode(): kv for kv in reply.kvs}
        src, dst = counters[PREFIX + source], counters[PREFIX + target]
        result = await client.txn(
            compare=[
                Compare.mod_revision(src.key) == src.mod_revision,
                Compare.mod_revision(dst.key) == dst.mod_revision,
            ],
            success=[
                Op.put(src.key, str(int(src.value) - amount)),
                Op.put(dst.key, str(int(dst.value) + amount)),
            ],
        )
        if result.succeeded:
            return


async def main() -> None:
    async with etcd.connect(ENDPOINT) as client:
        await client.put(PREFIX + "alice", "100")
        await client.put(PREFIX + "bob", "0")
        await transfer(client, "alice", "bob", 30)
        reply = await client.get(PREFIX, prefix=True)
        print({kv.key.decode(): int(kv.value) for kv in reply.kvs})  # alice 70, bob 30

        # Create-if-absent: only the first of two writers wins.
        for writer in ("first", "second"):
            won = await client.txn(
                compare=[Compare.create_revision(PREFIX + "owner") == 0],
                success=[Op.put(PREFIX + "owner", writer)],
                failure=[Op.get(PREFIX + "owner")],
            )
            if won.succeeded:
                print(writer, "became the owner")
            else:
                current = won.responses[0]
                assert isinstance(current, etcd.GetResponse)
                print(writer, "lost; the owner is", current.kvs[0].value)
        await client.delete(PREFIX, prefix=True)


if __name__ == "__main__":
    trio.run(main)
