"""Configuration in etcd: JSON values under a prefix, read back in one call or page by page.

Run: python examples/kv_config.py [ENDPOINT]   (default: $ETCDCTL_ENDPOINTS, else 127.0.0.1:2379)
"""

from __future__ import annotations

import os
import sys

import trio

import puregrpc_etcd as etcd

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ETCDCTL_ENDPOINTS")
PREFIX = "examples/kv_config/"


async def main() -> None:
    async with etcd.connect(ENDPOINT) as client:
        await client.put_json(PREFIX + "database", {"host": "db1", "port": 5432})
        await client.put(PREFIX + "log_level", "info")
        print(await client.get_json(PREFIX + "database"))  # {'host': 'db1', 'port': 5432}
        print(await client.get_value(PREFIX + "log_level"))  # b'info'
        print(await client.get_value(PREFIX + "missing", default=b"-"))  # b'-'

        # Everything under the prefix, as {key: KeyValue}.
        for key, kv in (await client.get_prefix(PREFIX)).items():
            print(key, kv.value, "version", kv.version)

        # Overwrite and get what was there before, in one round trip.
        reply = await client.put(PREFIX + "log_level", "debug", prev_kv=True)
        assert reply.prev_kv is not None
        print("log_level was", reply.prev_kv.value, "at revision", reply.prev_kv.mod_revision)

        # Many keys, read in pages at one revision: a consistent snapshot of the prefix.
        for number in range(25):
            await client.put(f"{PREFIX}items/{number:03d}", str(number))
        keys = [kv.key async for kv in client.scan(PREFIX + "items/", page_size=10)]
        print("scanned", len(keys), "items, from", keys[0], "to", keys[-1])

        deleted = await client.delete(PREFIX, prefix=True)
        print("deleted", deleted.deleted, "keys")


if __name__ == "__main__":
    trio.run(main)
