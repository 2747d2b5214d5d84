"""Watching a prefix: react to changes, and start from an earlier revision to miss nothing.

Run: python examples/watch.py [ENDPOINT]   (default: $ETCDCTL_ENDPOINTS, else 127.0.0.1:2379)
"""

from __future__ import annotations

import os
import sys

import trio

import puregrpc_etcd as etcd

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ETCDCTL_ENDPOINTS")
PREFIX = "examples/watch/"


async def main() -> None:
    async with etcd.connect(ENDPOINT) as client:
        start = (await client.put(PREFIX + "feature", "off")).header.revision

        async def writer() -> None:
            for value in ("on", "off", "on"):
                await client.put(PREFIX + "feature", value)
            await client.delete(PREFIX + "feature")

        # Starting at a known revision means no change can slip by between a read and the watch.
        async with client.watch(PREFIX, prefix=True, start_revision=start, prev_kv=True) as events:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                with trio.fail_after(10):
                    async for event in events:
                        before = event.prev_kv.value if event.prev_kv else None
                        print(event.type, event.kv.key, before, "->", event.kv.value)
                        if event.is_delete:
                            break
            print("seen up to revision", events.revision)


if __name__ == "__main__":
    trio.run(main)
