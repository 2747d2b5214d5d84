"""Unary gRPC throughput of the bare transport (``puregrpc_etcd.grpc``) against etcd, next to
grpclib and grpcio's aio client when they are installed: serializable Range calls at 1, 16
and 128 concurrent callers on one connection, printed as calls per second.

    python -m bench.grpc_unary [--endpoint HOST:PORT] [--calls N] [--rounds R]

Without ``--endpoint`` it starts a throwaway etcd (``puregrpc_etcd.testing.EtcdServer``).
Rounds interleave the clients so that a noisy neighbour hurts them alike; medians are shown.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any, Callable, Coroutine

import trio

from puregrpc_etcd import grpc
from puregrpc_etcd._proto import rpc_pb2

METHOD = "/etcdserverpb.KV/Range"
CONCURRENCY = (1, 16, 128)
REQUEST = rpc_pb2.RangeRequest(key=b"bench/grpc_unary", serializable=True)


def _shares(calls: int, tasks: int) -> list[int]:
    return [calls // tasks + (1 if index < calls % tasks else 0) for index in range(tasks)]


async def _repeat(call: Callable[[], Coroutine[Any, Any, Any]], count: int) -> None:
    for _ in range(count):
        await call()


def ours(endpoint: str, calls: int) -> dict[int, float]:
    async def main() -> dict[int, float]:
        rates = {}
        async with grpc.Channel([endpoint]) as channel:

            async def call() -> None:
                await channel.unary_unary(METHOD, REQUEST, rpc_pb2.RangeResponse)

            await call()
            for tasks in CONCURRENCY:
                started = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    for count in _shares(calls, tasks):
                        nursery.start_soon(_repeat, call, count)
                rates[tasks] = calls / (time.perf_counter() - started)
        return rates

    return trio.run(main)


async def _asyncio_rates(
    call: Callable[[], Coroutine[Any, Any, Any]], calls: int
) -> dict[int, float]:
    await call()
    rates = {}
    for tasks in CONCURRENCY:
        started = time.perf_counter()
        await asyncio.gather(*(_repeat(call, count) for count in _shares(calls, tasks)))
        rates[tasks] = calls / (time.perf_counter() - started)
    return rates


def grpclib_peer(endpoint: str, calls: int) -> dict[int, float]:
    from grpclib.client import Channel, UnaryUnaryMethod

    host, port = endpoint.rsplit(":", 1)

    async def main() -> dict[int, float]:
        channel = Channel(host, int(port))
        method = UnaryUnaryMethod(channel, METHOD, rpc_pb2.RangeRequest, rpc_pb2.RangeResponse)
        try:
            return await _asyncio_rates(lambda: method(REQUEST), calls)
        finally:
            channel.close()

    return asyncio.run(main())


def grpcio_peer(endpoint: str, calls: int) -> dict[int, float]:
    import grpc as grpcio  # the benchmark's peer; the package itself never imports it

    async def main() -> dict[int, float]:
        async with grpcio.aio.insecure_channel(endpoint) as channel:
            method = channel.unary_unary(
                METHOD,
                request_serializer=rpc_pb2.RangeRequest.SerializeToString,
                response_deserializer=rpc_pb2.RangeResponse.FromString,
            )
            return await _asyncio_rates(lambda: method(REQUEST), calls)

    return asyncio.run(main())


def _available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def run(endpoint: str, calls: int, rounds: int) -> None:
    clients: dict[str, Callable[[str, int], dict[int, float]]] = {"puregrpc_etcd": ours}
    if _available("grpclib"):
        clients["grpclib"] = grpclib_peer
    if _available("grpc"):
        clients["grpcio aio"] = grpcio_peer
    results: dict[str, dict[int, list[float]]] = {
        name: {tasks: [] for tasks in CONCURRENCY} for name in clients
    }
    for _round in range(rounds):
        for name, client in clients.items():
            for tasks, rate in client(endpoint, calls).items():
                results[name][tasks].append(rate)
    print(f"unary {METHOD} (serializable), {calls} calls, median of {rounds} rounds, calls/s")
    print(f"{'client':<16}" + "".join(f"{f'x{tasks}':>12}" for tasks in CONCURRENCY))
    for name, by_tasks in results.items():
        row = "".join(f"{statistics.median(by_tasks[tasks]):>12.0f}" for tasks in CONCURRENCY)
        print(f"{name:<16}{row}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="an etcd to use instead of a throwaway one")
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.endpoint:
        run(args.endpoint, args.calls, args.rounds)
        return
    from puregrpc_etcd.testing import EtcdServer

    with EtcdServer() as server:
        run(server.endpoint, args.calls, args.rounds)


if __name__ == "__main__":
    main()
