"""Leader election with failover, compatible with `etcdctl elect` and Go's concurrency.Election.

Run: python examples/election.py [ENDPOINT]   (default: $ETCDCTL_ENDPOINTS, else 127.0.0.1:2379)
"""

from __future__ import annotations

import os
import sys

import trio

import puregrpc_etcd as etcd

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ETCDCTL_ENDPOINTS")
ELECTION = "examples/election/scheduler"


async def candidate(client: etcd.Client, name: str, leaving: trio.Event) -> None:
    election = client.election(ELECTION, ttl=10)
    async with election.campaign(name):  # returns once elected; resigns on exit
        print(name, "leads")
        await election.proclaim(f"{name} (busy)")  # update the value without a new election
        await leaving.wait()
    print(name, "stepped down")


async def main() -> None:
    async with etcd.connect(ENDPOINT) as client:
        busy = {b"node-a (busy)": trio.Event(), b"node-b (busy)": trio.Event()}

        async def observer(task_status: trio.TaskStatus[None]) -> None:
            async with client.election(ELECTION).observe() as leaders:
                task_status.started()
                async for kv in leaders:
                    print("observer: leader is", kv.value)
                    if kv.value in busy:
                        busy[kv.value].set()

        leaving = {"node-a": trio.Event(), "node-b": trio.Event()}
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(observer)
                nursery.start_soon(candidate, client, "node-a", leaving["node-a"])
                await busy[b"node-a (busy)"].wait()
                nursery.start_soon(candidate, client, "node-b", leaving["node-b"])
                leaving["node-a"].set()  # node-a goes away: node-b takes over
                await busy[b"node-b (busy)"].wait()
                leader = await client.election(ELECTION).leader()
                print("leader now:", leader.value if leader else None)
                leaving["node-b"].set()
                nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
