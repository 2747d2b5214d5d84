"""What the asyncio and blocking faces cost over the trio client: sequential gets of one key
(64 B value) with each, 128 concurrent gets (trio tasks, asyncio tasks, threads), and the bare
thread hop of each face (a no-op coroutine run on the client's loop thread and waited for).

    python -m bench.faces [--endpoint HOST:PORT] [--calls N] [--rounds R]

Without ``--endpoint`` it starts a throwaway etcd (``puregrpc_etcd.testing.EtcdServer``).
Rounds interleave the faces so that a noisy neighbour hurts them alike; medians are shown, in
microseconds per call (wall clock, and CPU of the whole process: the client's threads), with
the ratios to the trio client. aetcd (grpcio's asyncio client) runs too when it is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import threading
import time
from typing import Any, Awaitable, Callable

import trio

import puregrpc_etcd as etcd
from puregrpc_etcd import aio, sync

KEY = "bench/faces"
VALUE = b"v" * 64
CONCURRENT = 128

uvloop: Any
try:
    import uvloop
except ImportError:  # optional
    uvloop = None

aetcd: Any
try:  # a peer for the asyncio face: grpcio's asyncio client (CPython only), untyped
    aetcd = importlib.import_module("aetcd")
except ImportError:
    aetcd = None


async def _noop() -> None:
    pass


class Clock:
    """Wall and process CPU seconds per call since it was made."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def per_call(self, calls: int) -> tuple[float, float]:
        return (time.perf_counter() - self.wall) / calls, (time.process_time() - self.cpu) / calls


def trio_gets(endpoint: str, calls: int, concurrent: int) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        async with etcd.connect(endpoint) as client:
            await client.get(KEY)
            share = calls // concurrent

            async def run() -> None:
                for _ in range(share):
                    await client.get(KEY)

            clock = Clock()
            async with trio.open_nursery() as nursery:
                for _ in range(concurrent):
                    nursery.start_soon(run)
            return clock.per_call(share * concurrent)

    return trio.run(main)


def sync_gets(endpoint: str, calls: int, concurrent: int) -> tuple[float, float]:
    with sync.connect(endpoint) as client:
        client.get(KEY)
        share = calls // concurrent

        def run() -> None:
            for _ in range(share):
                client.get(KEY)

        clock = Clock()
        if concurrent == 1:
            run()
        else:
            threads = [threading.Thread(target=run) for _ in range(concurrent)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return clock.per_call(share * concurrent)


def sync_hop(endpoint: str, calls: int) -> tuple[float, float]:
    with sync.connect(endpoint) as client:
        portal = client._portal
        clock = Clock()
        for _ in range(calls):
            call = portal.submit(_noop)
            call.outcome.wait()
        return clock.per_call(calls)


async def _asyncio_gets(
    get: Callable[[], Awaitable[Any]], calls: int, concurrent: int
) -> tuple[float, float]:
    await get()
    share = calls // concurrent

    async def run() -> None:
        for _ in range(share):
            await get()

    clock = Clock()
    await asyncio.gather(*(run() for _ in range(concurrent)))
    return clock.per_call(share * concurrent)


def aio_gets(
    endpoint: str, calls: int, concurrent: int, runner: Callable[[Any], Any]
) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        async with aio.connect(endpoint) as client:
            return await _asyncio_gets(lambda: client.get(KEY), calls, concurrent)

    return runner(main())  # type: ignore[no-any-return]


def aio_hop(endpoint: str, calls: int, runner: Callable[[Any], Any]) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        async with aio.connect(endpoint) as client:
            portal = client._portal
            loop = asyncio.get_running_loop()
            clock = Clock()
            for _ in range(calls):
                await portal.submit(_noop).outcome.wait_async(loop)
            return clock.per_call(calls)

    return runner(main())  # type: ignore[no-any-return]


def aetcd_gets(endpoint: str, calls: int, concurrent: int) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        host, port = endpoint.rsplit(":", 1)
        client = aetcd.Client(host=host, port=int(port))
        await client.connect()
        try:
            key = KEY.encode()
            return await _asyncio_gets(lambda: client.get(key), calls, concurrent)
        finally:
            await client.close()

    return asyncio.run(main())


def contenders(calls: int) -> dict[str, Callable[[str], tuple[float, float]]]:
    runs: dict[str, Callable[[str], tuple[float, float]]] = {
        "trio get_seq": lambda ep: trio_gets(ep, calls, 1),
        "sync get_seq": lambda ep: sync_gets(ep, calls, 1),
        "aio get_seq": lambda ep: aio_gets(ep, calls, 1, asyncio.run),
        "trio get_c128": lambda ep: trio_gets(ep, calls * 4, CONCURRENT),
        "sync get_c128 (threads)": lambda ep: sync_gets(ep, calls * 4, CONCURRENT),
        "aio get_c128": lambda ep: aio_gets(ep, calls * 4, CONCURRENT, asyncio.run),
        "sync hop": lambda ep: sync_hop(ep, calls),
        "aio hop": lambda ep: aio_hop(ep, calls, asyncio.run),
    }
    if aetcd is not None:
        runs["aetcd get_seq"] = lambda ep: aetcd_gets(ep, calls, 1)
        runs["aetcd get_c128"] = lambda ep: aetcd_gets(ep, calls * 4, CONCURRENT)
    if uvloop is not None:
        runs["aio get_seq (uvloop)"] = lambda ep: aio_gets(ep, calls, 1, uvloop.run)
        runs["aio get_c128 (uvloop)"] = lambda ep: aio_gets(ep, calls * 4, CONCURRENT, uvloop.run)
        runs["aio hop (uvloop)"] = lambda ep: aio_hop(ep, calls, uvloop.run)
    return runs


def measure(endpoint: str, calls: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds per call of every contender, over interleaved rounds."""

    async def store() -> None:
        async with etcd.connect(endpoint) as client:
            await client.put(KEY, VALUE)

    trio.run(store)
    runs = contenders(calls)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name].append(run(endpoint))
    return {
        name: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for name, values in samples.items()
    }


def table(medians: dict[str, tuple[float, float]]) -> str:
    lines = [
        "| run | wall µs per call | vs trio | CPU µs per call | vs trio |",
        "|---|---|---|---|---|",
    ]
    for name, (wall, cpu) in medians.items():
        kind = name.split()[1]
        base = medians.get(f"trio {kind}") if kind.startswith("get_") else None
        wall_ratio = f"{wall / base[0]:.2f}x" if base else ""
        cpu_ratio = f"{cpu / base[1]:.2f}x" if base else ""
        lines.append(
            f"| {name} | {wall * 1e6:,.1f} | {wall_ratio} | {cpu * 1e6:,.1f} | {cpu_ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", help="a running etcd (default: start one)")
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per run")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.endpoint:
        print(table(measure(args.endpoint, args.calls, args.rounds)))
        return
    from puregrpc_etcd.testing import EtcdServer

    with EtcdServer() as server:
        print(table(measure(server.endpoint, args.calls, args.rounds)))


if __name__ == "__main__":
    main()
