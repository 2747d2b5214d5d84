"""Benchmark worker for puregrpc_etcd (trio).

``python -m bench.worker_ours WORKLOAD ENDPOINT SECONDS [FIRST_REVISION [WARMUP]]`` prints one
JSON object:
``{"value": ..., "p50_ms": ..., "p99_ms": ...}``. The workload ``prepare`` stores the keys the
prefix and replay workloads read, and prints the replay's first revision.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from functools import partial

import trio

import puregrpc_etcd as etcd
from bench import workloads as w


async def _loop(op, seconds: float, tasks: int, latencies: list[float] | None) -> int:
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        perf = time.perf_counter
        while True:
            start = perf()
            if start >= stop_at:
                return
            await op()
            if latencies is not None:
                latencies.append(perf() - start)
            done += 1

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker)
    return done


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


async def prepare(client: etcd.Client) -> int:
    value = b"v" * w.PREFIX_VALUE_SIZE

    async def fill(keys: list[bytes]) -> None:
        for key in keys:
            await client.put(key, value)

    async def fill_all(template: bytes, count: int) -> None:
        async with trio.open_nursery() as nursery:
            for lane in range(64):
                nursery.start_soon(fill, [template % j for j in range(lane, count, 64)])

    await fill_all(b"bench/prefix/%08d", w.PREFIX_KEYS)
    first = (await client.put(b"bench/replay-start", b"")).header.revision + 1
    await fill_all(b"bench/replay/%08d", w.REPLAY_EVENTS)
    return first


async def run(workload: str, endpoint: str, seconds: float, warmup: float) -> dict[str, float]:
    async with etcd.connect(endpoint, timeout=120) as client:
        if workload == "prepare":
            return {"value": await prepare(client)}
        if workload.startswith(("get_", "put_")):
            key, value = b"bench/key", b"x" * 64
            await client.put(key, value)
            if workload.startswith("get_"):

                async def op() -> None:
                    await client.get(key)
            else:

                async def op() -> None:
                    await client.put(key, value)

            tasks = w.concurrency(workload)
            await _loop(op, warmup, tasks, None)
            latencies: list[float] | None = [] if tasks == 1 else None
            cpu_start, start = w.cpu_seconds(), time.perf_counter()
            done = await _loop(op, seconds, tasks, latencies)
            result = {"value": done / (time.perf_counter() - start)}
            result["cpu_us"] = (w.cpu_seconds() - cpu_start) / max(done, 1) * 1e6
            if latencies:
                result["p50_ms"] = _percentile(latencies, 0.5)
                result["p99_ms"] = _percentile(latencies, 0.99)
            return result
        if workload == "prefix_10k":

            async def get_prefix() -> int:
                return len((await client.get(b"bench/prefix/", prefix=True)).kvs)

            async def readline() -> str:
                return await trio.to_thread.run_sync(sys.stdin.readline)

            return await w.prefix_session(get_prefix, warmup, seconds, readline)
        if workload == "watch_replay":
            first = int(sys.argv[4])
            count = 0
            start = time.perf_counter()
            async with client.watch(b"bench/replay/", prefix=True, start_revision=first) as watcher:
                async for _event in watcher:
                    count += 1
                    if count == w.REPLAY_EVENTS:
                        break
            return {"value": count / (time.perf_counter() - start)}
        if workload == "watch_fanout":
            return {"value": await _fanout(client)}
        if workload == "lease_keepalive":
            return {"value": await _keepalive(client, seconds)}
        if workload == "mem_watcher":
            return {"value": await _mem_watchers(client)}
        if workload == "mem_call":
            return {"value": await _mem_calls(client)}
    raise SystemExit(f"unknown workload {workload}")


async def _fanout(client: etcd.Client) -> float:
    received = 0
    all_done = trio.Event()
    ready = 0
    all_ready = trio.Event()

    async def watch_one(watcher: etcd.Watcher) -> None:
        nonlocal received
        seen = 0
        async for _event in watcher:
            seen += 1
            received += 1
            if received == w.FANOUT_WATCHERS * w.FANOUT_EVENTS:
                all_done.set()
            if seen == w.FANOUT_EVENTS:
                return

    async def hold(nursery: trio.Nursery) -> None:
        nonlocal ready
        async with client.watch(b"bench/fanout") as watcher:
            ready += 1
            if ready == w.FANOUT_WATCHERS:
                all_ready.set()
            await watch_one(watcher)

    async with trio.open_nursery() as nursery:
        for _ in range(w.FANOUT_WATCHERS):
            nursery.start_soon(hold, nursery)
        await all_ready.wait()
        start = time.perf_counter()
        for index in range(w.FANOUT_EVENTS):
            await client.put(b"bench/fanout", str(index))
        await all_done.wait()
        return received / (time.perf_counter() - start)


async def _keepalive(client: etcd.Client, seconds: float) -> float:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        for _ in range(w.KEEPALIVE_LEASES):
            await stack.enter_async_context(client.lease(6))
        await trio.sleep(1)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu0, wall0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
        await trio.sleep(max(seconds, 6.0))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu1, wall1 = usage.ru_utime + usage.ru_stime, time.perf_counter()
    return 100 * (cpu1 - cpu0) / (wall1 - wall0)


async def _mem_watchers(client: etcd.Client) -> float:
    from contextlib import AsyncExitStack

    count = 1000
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(client.watch(b"bench/mem/warm"))
        await trio.sleep(0.2)
        before = w.rss_kib()
        for index in range(count):
            await stack.enter_async_context(client.watch(f"bench/mem/{index}"))
        await trio.sleep(0.2)
        after = w.rss_kib()
    return (after - before) / count


async def _mem_calls(client: etcd.Client, count: int = 1000) -> float:
    """Resident memory per unary call in flight: ``count`` v3lock Lock calls wait behind one
    lock holder, each on a lease of its own, until every waiter's key is on the server."""
    name = b"bench/mem-lock"
    leases = [(await client.grant(60)).id for _ in range(count + 1)]
    try:
        await client.lock_rpc(name, leases[0], timeout=30)
        await trio.sleep(0.2)
        before = w.rss_kib()
        async with trio.open_nursery() as nursery:
            for lease in leases[1:]:
                nursery.start_soon(partial(client.lock_rpc, name, lease, timeout=60))
            with trio.fail_after(30):
                keys = partial(client.get, name + b"/", prefix=True, count_only=True)
                while (await keys()).count <= count:  # noqa: ASYNC110 - the keys are etcd's
                    await trio.sleep(0.1)
            await trio.sleep(0.2)
            after = w.rss_kib()
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for lease in leases:
                await client.revoke(lease)
    return (after - before) / count


def main() -> None:
    workload, endpoint, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    print(json.dumps(trio.run(run, workload, endpoint, seconds, w.warmup_arg(sys.argv, 5))))


if __name__ == "__main__":
    main()
