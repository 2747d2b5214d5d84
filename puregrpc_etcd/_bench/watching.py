"""``benchmark watch``, ``watch-latency`` and ``watch-get`` (``tools/benchmark/cmd/watch*.go``).

They run in the command's own process. Our client carries all the watchers of one connection
on one Watch stream, so each of the Go tool's ``--streams`` is one connection here.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Callable

from puregrpc_etcd._bench.keys import random_bytes, varint
from puregrpc_etcd._bench.progress import Progress
from puregrpc_etcd.errors import EtcdError

if TYPE_CHECKING:
    import trio

    from puregrpc_etcd._bench.engine import connect_with, open_clients
    from puregrpc_etcd._bench.report import Report
    from puregrpc_etcd._bench.workloads import Limiter
    from puregrpc_etcd._cli.session import Context, Settings
    from puregrpc_etcd.client import Client
    from puregrpc_etcd.watch import Watcher
else:  # imported on first use: the command's --help builds this module's parsers
    from puregrpc_etcd._cli import OnFirstUse, trio

    Report = OnFirstUse("puregrpc_etcd._bench.report", "Report")  # decimal: not for get or put

    connect_with = OnFirstUse("puregrpc_etcd._bench.engine", "connect_with")
    open_clients = OnFirstUse("puregrpc_etcd._bench.engine", "open_clients")
    Limiter = OnFirstUse("puregrpc_etcd._bench.workloads", "Limiter")

# How long the events of the last puts may take to arrive before the report is printed anyway.
_DRAIN_TIMEOUT = 30.0


def register(command: Callable[..., argparse.ArgumentParser], count: Any, rate: Any) -> None:
    watch = command("watch", "Benchmark watch", watch_command)
    watch.add_argument("--streams", type=count(1), default=10, help="watch streams (10)")
    watch.add_argument("--watch-per-stream", type=count(1), default=100, help="watchers (100)")
    watch.add_argument("--watched-key-total", type=count(1), default=1, help="watched keys (1)")
    watch.add_argument("--put-rate", type=rate, default=0.0, help="puts per second (0: no limit)")
    watch.add_argument("--put-total", type=count(1), default=1000, help="puts (1000)")
    watch.add_argument("--key-size", type=count(1), default=32, help="key size (32)")
    watch.add_argument("--key-space-size", type=count(1), default=1, help="maximum keys (1)")
    watch.add_argument("--sequential-keys", action="store_true", help="use sequential keys")

    latency = command("watch-latency", "Benchmark watch latency", watch_latency_command)
    latency.add_argument("--streams", type=count(1), default=10, help="watch streams (10)")
    latency.add_argument("--watchers-per-stream", type=count(1), default=10, help="(10)")
    latency.add_argument("--prevkv", action="store_true", help="PrevKV on watch requests")
    latency.add_argument("--put-total", type=count(1), default=1000, help="puts (1000)")
    latency.add_argument("--put-rate", type=count(1), default=100, help="puts per second (100)")
    latency.add_argument("--key-size", type=count(1), default=32, help="key size (32)")
    latency.add_argument("--val-size", type=count(0), default=32, help="value size (32)")

    get = command("watch-get", "Benchmark watch with get", watch_get_command)
    get.add_argument("--watchers", type=count(1), default=10000, help="watchers (10000)")
    get.add_argument("--streams", type=count(1), default=1, help="watcher streams (1)")
    get.add_argument("--events", type=count(1), default=8, help="events per watcher (8)")


def _summary(title: str, report: Report, begin: float, args: argparse.Namespace) -> None:
    """Print ``report`` as etcd's benchmark does, over the time since ``begin``."""
    elapsed = time.perf_counter() - begin
    text = report.render(elapsed, precise=args.precise, sample=args.sample)
    print(f"{title} summary:\n{text}", end="", flush=True)


async def _drain(done: trio.Event, nursery: trio.Nursery) -> None:
    """Wait (up to ``_DRAIN_TIMEOUT``) for the last event, then stop the receivers."""
    with trio.move_on_after(_DRAIN_TIMEOUT):
        await done.wait()
    nursery.cancel_scope.cancel()


async def _streams(stack: AsyncExitStack, settings: Settings, count: int) -> list[Client]:
    return await stack.enter_async_context(open_clients(settings, count))


async def watch_command(ctx: Context, args: argparse.Namespace) -> int:
    from puregrpc_etcd._cli.bench_commands import bench_settings

    settings = await bench_settings(ctx, args)
    connections = min(args.clients, args.conns)
    wanted = 1 + args.streams // 100
    if connections < wanted:
        print(
            f"warning: grpc limits 100 streams per client connection, "
            f"have {connections} but need {wanted}",
            file=sys.stderr,
        )
    watched = []
    for i in range(args.watched_key_total):
        value = i % args.key_space_size if args.sequential_keys else None
        if value is None:
            value = random.randrange(args.key_space_size)
        head = varint(value)
        if len(head) > args.key_size:
            raise ValueError(f"--key-size {args.key_size} cannot hold the watched keys")
        watched.append(head + bytes(args.key_size - len(head)))
    watchers_of: dict[bytes, int] = {}
    async with AsyncExitStack() as stack:
        streams = await _streams(stack, settings, args.streams)
        # --clients putters over --conns connections, as the Go tool's clients share its conns.
        conns = await _streams(stack, settings, connections)
        put_clients = [conns[n % len(conns)] for n in range(args.clients)]
        total_watchers = args.streams * args.watch_per_stream
        make = Report()
        progress = Progress(total_watchers)
        watchers: list[Watcher] = []
        begin = time.perf_counter()
        for i in range(total_watchers):
            key = watched[i % len(watched)]
            wall, began = time.time(), time.perf_counter()
            watcher = await stack.enter_async_context(streams[i % len(streams)].watch(key))
            make.add(wall, time.perf_counter() - began)
            watchers.append(watcher)
            watchers_of[key] = watchers_of.get(key, 0) + 1
            progress(i + 1)
        progress.finish()
        _summary("Watch creation", make, begin, args)

        events_total = sum(watchers_of[watched[i % len(watched)]] for i in range(args.put_total))
        received = Report()
        progress = Progress(events_total)
        left = [events_total]
        done = trio.Event()

        async def receive(watcher: Watcher) -> None:
            async for _ in watcher:
                now = time.perf_counter()
                received.add(time.time(), time.perf_counter() - now)
                left[0] -= 1
                progress(events_total - left[0])
                if left[0] <= 0:
                    done.set()
                    return

        limiter = Limiter(args.put_rate)
        puts = iter(range(args.put_total))

        async def put(client: Client) -> None:
            for i in puts:
                await trio.sleep_until(limiter.slot(trio.current_time()))
                await client.put(watched[i % len(watched)], b"data", timeout=ctx.command_timeout)

        begin = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for watcher in watchers:
                nursery.start_soon(receive, watcher)
            async with trio.open_nursery() as putters:
                for client in put_clients:
                    putters.start_soon(put, client)
            await _drain(done, nursery)
        progress.finish()
        _summary("Watch events received", received, begin, args)
    return 0


async def watch_latency_command(ctx: Context, args: argparse.Namespace) -> int:
    from puregrpc_etcd._cli.bench_commands import bench_settings

    settings = await bench_settings(ctx, args)
    key, value = random_bytes(args.key_size), random_bytes(args.val_size)
    total = args.put_total
    async with AsyncExitStack() as stack:
        streams = await _streams(stack, settings, args.streams)
        put_client = await stack.enter_async_context(connect_with(settings))
        watchers = [
            await stack.enter_async_context(stream.watch(key, prev_kv=args.prevkv))
            for stream in streams
            for _ in range(args.watchers_per_stream)
        ]
        progress = Progress(total * len(watchers))
        seen = [0]
        event_times = [[0.0] * total for _ in watchers]
        put_times = [0.0] * total
        put_report, watch_report = Report(), Report()
        wall0, perf0 = time.time(), time.perf_counter()

        async def receive(number: int) -> None:
            count = 0
            async for _ in watchers[number]:
                event_times[number][count] = time.perf_counter()
                count += 1
                seen[0] += 1
                progress(seen[0])
                if seen[0] >= total * len(watchers):
                    all_seen.set()
                if count >= total:
                    return

        all_seen = trio.Event()
        limiter = Limiter(args.put_rate)
        begin = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for number in range(len(watchers)):
                nursery.start_soon(receive, number)
            for i in range(total):
                await trio.sleep_until(limiter.slot(trio.current_time()))
                start = time.perf_counter()
                await put_client.put(key, value, timeout=ctx.command_timeout)
                end = time.perf_counter()
                put_report.add(wall0 + start - perf0, end - start)
                put_times[i] = end
            await _drain(all_seen, nursery)
        progress.finish()
        _summary("\nPut", put_report, begin, args)
        for times in event_times:
            for put_time, end in zip(put_times, times):
                if end == 0.0:
                    continue  # never arrived (drain timeout)
                start = min(put_time, end)
                watch_report.add(wall0 + start - perf0, end - start)
        _summary("\nWatch events", watch_report, begin, args)
    return 0


async def watch_get_command(ctx: Context, args: argparse.Namespace) -> int:
    from puregrpc_etcd._cli.bench_commands import bench_settings

    settings = await bench_settings(ctx, args)
    async with AsyncExitStack() as stack:
        streams = await _streams(stack, settings, args.streams)
        getter = await stack.enter_async_context(connect_with(settings))
        watch_rev = 0
        for i in range(args.events):
            reply = await streams[0].put("watchkey", str(i), timeout=ctx.command_timeout)
            if i == 0:
                watch_rev = reply.header.revision
        progress = Progress(args.watchers * args.events)
        seen = [0]
        report = Report()
        first = trio.Event()

        async def watch_one(number: int) -> None:
            stream = streams[number % len(streams)]
            async with stream.watch("watchkey", start_revision=watch_rev) as watcher:
                first.set()
                got = 0
                async for _ in watcher:
                    got += 1
                    seen[0] += 1
                    progress(seen[0])
                    if got >= args.events:
                        return

        async def gets() -> None:
            await first.wait()
            while True:
                wall, began = time.time(), time.perf_counter()
                try:
                    await getter.get("abc", serializable=True, timeout=ctx.command_timeout)
                except (EtcdError, OSError) as exc:  # counted, as the Go tool does
                    from puregrpc_etcd._bench.engine import error_line

                    report.add_error(error_line(exc))
                else:
                    report.add(wall, time.perf_counter() - began)

        begin = time.perf_counter()
        async with trio.open_nursery() as outer:
            outer.start_soon(gets)
            with trio.move_on_after(max(_DRAIN_TIMEOUT, ctx.command_timeout)):
                async with trio.open_nursery() as nursery:
                    for number in range(args.watchers):
                        nursery.start_soon(watch_one, number)
            outer.cancel_scope.cancel()
        progress.finish()
        _summary("Get during watch", report, begin, args)
    return 0
