"""The guided tour behind ``puregrpc-etcd demo`` (and ``make demo``): a throwaway etcd and one
short scene per feature, each printing what happens as it happens.

Every scene is an ordinary use of the public API; read this file next to its output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import trio

import puregrpc_etcd as etcd

if TYPE_CHECKING:
    from puregrpc_etcd.client import Client

_started = time.monotonic()


def say(text: str = "") -> None:
    print(text, flush=True)


def step(text: str) -> None:
    say(f"  {time.monotonic() - _started:5.1f}s  {text}")


def scene(number: int, title: str) -> None:
    say()
    say(f"== {number}. {title} ==")


async def config_management(client: Client) -> None:
    scene(1, "Configuration: JSON values under a prefix")
    await client.put_json("demo/config/app/database", {"host": "db1", "port": 5432})
    await client.put_json("demo/config/app/features", {"dark_mode": False, "beta": ["search"]})
    await client.put("demo/config/app/log_level", "info")
    for key, kv in (await client.get_prefix("demo/config/app/")).items():
        step(f"{key.decode():<30} = {kv.value.decode()}  (version {kv.version})")
    database = await client.get_json("demo/config/app/database")
    step(f"get_json -> {database['host']}:{database['port']}")


async def service_discovery(client: Client, pause: float) -> None:
    scene(2, "Service registration with a lease, and discovery")

    async def discover() -> list[str]:
        found = await client.get_prefix("demo/services/api/")
        return sorted(json.loads(kv.value)["address"] for kv in found.values())

    async with client.lease(10) as first, client.lease(10) as second:
        for lease, address in ((first, "10.0.0.1:8080"), (second, "10.0.0.2:8080")):
            instance = f"demo/services/api/{lease.id:x}"
            await client.put_json(instance, {"address": address}, lease=lease.id)
            step(f"registered {address} under lease {lease.id:x} (TTL {lease.ttl}s, kept alive)")
        step(f"discovered: {await discover()}")
        await trio.sleep(pause)
    step("both instances stopped: their leases were revoked and the keys went with them")
    step(f"discovered: {await discover()}")


async def config_reload(client: Client, pause: float) -> None:
    scene(3, "A watcher reloading configuration as it changes")
    config: dict[str, Any] = {}
    reloaded = trio.Event()

    async def watcher(task_status: trio.TaskStatus[None]) -> None:
        async with client.watch("demo/config/app/", prefix=True) as events:
            task_status.started()
            async for event in events:
                name = event.kv.key.decode().rsplit("/", 1)[-1]
                if event.type == "delete":
                    config.pop(name, None)
                else:
                    config[name] = event.kv.value.decode()
                level = config.get("log_level")
                step(f"watcher: {event.type} {name} -> config reloaded, log_level={level}")
                if event.type == "delete":
                    reloaded.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(watcher)
        await client.put("demo/config/app/log_level", "debug")
        await trio.sleep(pause)
        await client.put("demo/config/app/log_level", "warning")
        await trio.sleep(pause)
        await client.delete("demo/config/app/log_level")
        with trio.fail_after(10):
            await reloaded.wait()
        nursery.cancel_scope.cancel()


async def workers_and_lock(client: Client, pause: float) -> None:
    scene(4, "Three workers taking a lock in turn")

    async def worker(number: int) -> None:
        async with client.lock("demo/locks/report", ttl=10) as lock:
            step(f"worker {number} holds the lock (fencing token: revision {lock.revision})")
            await trio.sleep(pause)
            step(f"worker {number} releases it")

    async with trio.open_nursery() as nursery:
        for number in (1, 2, 3):
            nursery.start_soon(worker, number)
            await trio.sleep(0.05)


# node-a of scene 5 runs in a process of its own, so that it can really crash: killed, it
# neither resigns nor revokes its session lease, which etcd deletes once its TTL runs out.
_CRASHING_CANDIDATE = """
import sys, trio, puregrpc_etcd as etcd
async def main(endpoint, name, ttl):
    async with etcd.connect(endpoint) as client:
        async with client.election(name, ttl=int(ttl)).campaign("node-a"):
            print("leading", flush=True)
            await trio.sleep_forever()
trio.run(main, *sys.argv[1:])
"""
_CANDIDATE_TTL = 3


async def leader_election(client: Client, endpoint: str, pause: float) -> None:
    scene(5, "Leader election with failover")
    election_name = "demo/election/scheduler"
    took_over = trio.Event()

    async def candidate(name: str, stop: trio.Event) -> None:
        async with client.election(election_name, ttl=10).campaign(name):
            step(f"{name} is the leader")
            took_over.set()
            await stop.wait()
            step(f"{name} steps down")

    argv = [sys.executable, "-c", _CRASHING_CANDIDATE, endpoint, election_name]
    node_a = await trio.lowlevel.open_process([*argv, str(_CANDIDATE_TTL)], stdout=subprocess.PIPE)
    try:
        with trio.fail_after(30):
            assert node_a.stdout is not None
            while b"leading" not in await node_a.stdout.receive_some():
                pass
        step(f"node-a (its own process, session lease TTL {_CANDIDATE_TTL}s) is the leader")
        stop_b = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(candidate, "node-b", stop_b)
            await trio.sleep(pause)
            leader = await client.election(election_name).leader()
            step(f"observer: the leader is {leader.value.decode() if leader else None}")
            step("node-a fails: its process is killed, it neither resigns nor revokes its lease")
            node_a.kill()
            await node_a.wait()
            failed = time.monotonic()
            with trio.fail_after(_CANDIDATE_TTL + 15):
                await took_over.wait()
            lapse = time.monotonic() - failed
            step(f"... as node-a's lease expired, {lapse:.1f}s after it died, and its key with it")
            leader = await client.election(election_name).leader()
            step(f"observer: the leader is now {leader.value.decode() if leader else None}")
            stop_b.set()
    finally:
        with trio.CancelScope(shield=True):
            node_a.kill()
            await node_a.wait()


async def history_and_compaction(client: Client) -> None:
    scene(6, "Key history at old revisions, then compaction")
    revisions = [
        (await client.put("demo/history/color", color)).header.revision
        for color in ("red", "green", "blue")
    ]
    for revision in revisions:
        old = await client.get("demo/history/color", revision=revision)
        step(f"at revision {revision}: color = {old.kvs[0].value.decode()}")
    await client.compact(revisions[-1])
    step(f"compacted up to revision {revisions[-1]}")
    try:
        await client.get("demo/history/color", revision=revisions[0])
    except etcd.CompactedError:
        step(f"revision {revisions[0]} is gone now: CompactedError")


async def atomic_transfer(client: Client) -> None:
    scene(7, "A transaction moving a value between two counters atomically")
    await client.put("demo/accounts/alice", "100")
    await client.put("demo/accounts/bob", "0")

    async def transfer(amount: int, *, interfere: bool = False) -> None:
        for attempt in (1, 2, 3):
            reply = await client.get("demo/accounts/", prefix=True)
            balances = {kv.key.decode().rsplit("/", 1)[1]: kv for kv in reply.kvs}
            alice, bob = balances["alice"], balances["bob"]
            if interfere and attempt == 1:
                await client.put("demo/accounts/alice", str(int(alice.value) + 5))
                step("(someone else deposits 5 to alice meanwhile)")
            result = await client.txn(
                compare=[
                    etcd.Compare.mod_revision("demo/accounts/alice") == alice.mod_revision,
                    etcd.Compare.mod_revision("demo/accounts/bob") == bob.mod_revision,
                ],
                success=[
                    etcd.Op.put("demo/accounts/alice", str(int(alice.value) - amount)),
                    etcd.Op.put("demo/accounts/bob", str(int(bob.value) + amount)),
                ],
            )
            outcome = "committed" if result.succeeded else "conflict, retrying"
            step(f"move {amount} alice -> bob, attempt {attempt}: {outcome}")
            if result.succeeded:
                return

    await transfer(30)
    await transfer(20, interfere=True)
    final = await client.get("demo/accounts/", prefix=True)
    step("balances: " + ", ".join(f"{kv.key.decode()}={kv.value.decode()}" for kv in final.kvs))


async def heartbeat(client: Client) -> None:
    scene(8, "A health heartbeat that disappears when its owner stops")
    grant = await client.grant(2)
    await client.put("demo/health/worker-7", "alive", lease=grant.id)
    step(f"worker-7 publishes its heartbeat on lease {grant.id:x} (TTL {grant.ttl}s)")
    async with client.watch("demo/health/", prefix=True) as events:
        async with client.keep_alive(grant.id):
            await trio.sleep(2.5)
            step(f"after 2.5s it is still there: {await client.exists('demo/health/worker-7')}")
        step("worker-7 crashes: nobody renews its lease any more")
        stopped = time.monotonic()
        with trio.fail_after(15):
            async for event in events:
                if event.type == "delete":
                    step(f"the heartbeat key expired {time.monotonic() - stopped:.1f}s later")
                    break


async def graceful_shutdown(endpoints: list[str]) -> None:
    scene(9, "Graceful shutdown")
    registration = "demo/services/web/1"
    async with etcd.connect(endpoints) as client:

        async def service(task_status: trio.TaskStatus[None]) -> None:
            async with client.lease(30) as lease:
                await client.put(registration, "10.0.0.3:80", lease=lease.id)
                async with client.watch("demo/config/", prefix=True):
                    task_status.started()
                    await trio.sleep_forever()

        async with trio.open_nursery() as nursery:
            await nursery.start(service)
            step("a service runs: its registration on a kept-alive lease, and a config watch")
            step("shutdown requested: cancel the service, then leave `async with connect()`")
            nursery.cancel_scope.cancel()
    async with etcd.connect(endpoints) as check:
        gone = not await check.exists(registration)
        step(f"its registration is gone at once (lease revoked, not left to expire): {gone}")


async def tour(*, pause: float = 0.3, binary: str | None = None) -> None:
    """Start a throwaway etcd, run every scene against it, and stop it leaving nothing behind."""
    from puregrpc_etcd.testing import EtcdServer

    server = EtcdServer(binary=binary)
    workdir = server.workdir
    say("Starting a throwaway etcd ...")
    try:
        # Inside the try: an etcd that fails to start is stopped and its directory removed too.
        await trio.to_thread.run_sync(server.start)
        step(f"etcd serving at {server.endpoint} (data in {workdir})")
        async with etcd.connect(server.endpoints) as client:
            await config_management(client)
            await service_discovery(client, pause)
            await config_reload(client, pause)
            await workers_and_lock(client, pause)
            await leader_election(client, server.endpoint, pause)
            await history_and_compaction(client)
            await atomic_transfer(client)
            await heartbeat(client)
        await graceful_shutdown(server.endpoints)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(server.close)
    removed = not await trio.Path(workdir).exists()
    step(f"etcd stopped; {workdir} removed: {removed}")
    say()
    say("Done. Read puregrpc_etcd/demo.py for the code of each scene.")
