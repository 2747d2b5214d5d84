"""Cluster and maintenance: members, per-member status and hashes, alarms, defragmentation
and a snapshot (a backup that `etcdutl snapshot restore` takes).

Run: python examples/cluster_maintenance.py [ENDPOINT]   (default: $ETCDCTL_ENDPOINTS)
"""

from __future__ import annotations

import os
import sys
import tempfile

import trio

import puregrpc_etcd as etcd

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ETCDCTL_ENDPOINTS")


async def main() -> None:
    async with etcd.connect(ENDPOINT) as client:
        for member in await client.cluster.members():
            state = "started" if member.started else "not started"
            print(f"member {member.id:x} {member.name!r} {state} clients={member.client_urls}")
            for url in member.client_urls:
                status = await client.maintenance.status(url)
                role = "leader" if status.is_leader else "follower"
                print(f"  {url}: etcd {status.version}, {role}, db {status.db_size} bytes,"
                      f" raft index {status.raft_index}")  # fmt: skip
                hashed = await client.maintenance.hash_kv(endpoint=url)
                print(f"  hash of the store: {hashed.hash} at revision {hashed.header.revision}")
        print("alarms:", await client.maintenance.alarms())

        await client.maintenance.defragment()
        print("defragmented the member we are connected to")

        def progress(done: int, total: int | None) -> None:
            if total and done == total:
                print(f"snapshot: {done} of {total} bytes")

        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "backup.db")
            size = await client.maintenance.snapshot(path, progress=progress)
            print("snapshot saved:", size, "bytes, checksum verified")


if __name__ == "__main__":
    trio.run(main)
