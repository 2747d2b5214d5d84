"""Benchmark workers for the peer clients (asyncio): aetcd (grpcio), grpclib (pure Python) and
grpcio's aio channel called directly (``grpcio``, the get/put workloads).

``python -m bench.worker_peers CLIENT WORKLOAD ENDPOINT SECONDS [FIRST_REVISION [WARMUP]]`` prints
one JSON object like the puregrpc_etcd worker. The grpclib and grpcio peers send etcd's requests
with the protobuf message classes generated for this package (``puregrpc_etcd._proto``), so every
stack pays the same protobuf cost; they import nothing else of ours. ``ENDPOINT`` is ``HOST:PORT``,
or ``etcds://HOST:PORT/?cacert=FILE`` for TLS (grpclib and grpcio).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench import workloads as w


def _address(endpoint: str) -> tuple[str, int, str | None]:
    """Host, port and CA file (None: plaintext) of ``HOST:PORT`` or ``etcds://HOST:PORT/?cacert=``."""
    if "://" not in endpoint:
        host, port = endpoint.rsplit(":", 1)
        return host, int(port), None
    url = urlsplit(endpoint)
    if not (url.hostname and url.port):
        raise SystemExit(f"no host and port in {endpoint!r}")
    return url.hostname, url.port, parse_qs(url.query)["cacert"][0]


class GrpclibKV:
    """The few etcd calls the workloads need, on a grpclib channel."""

    def __init__(self, endpoint: str) -> None:
        from grpclib.client import Channel, UnaryUnaryMethod

        from puregrpc_etcd._proto import rpc_pb2

        host, port, cacert = _address(endpoint)
        self.pb = rpc_pb2
        context = None
        if cacert:
            import ssl

            context = ssl.create_default_context(cafile=cacert)
            context.set_alpn_protocols(["h2"])
        self.channel = Channel(host, port, ssl=context)
        self._range = UnaryUnaryMethod(
            self.channel, "/etcdserverpb.KV/Range", rpc_pb2.RangeRequest, rpc_pb2.RangeResponse
        )
        self._put = UnaryUnaryMethod(
            self.channel, "/etcdserverpb.KV/Put", rpc_pb2.PutRequest, rpc_pb2.PutResponse
        )

    async def get(self, key: bytes) -> Any:
        return await self._range(self.pb.RangeRequest(key=key))

    async def get_prefix(self, prefix: bytes) -> Any:
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        return (await self._range(self.pb.RangeRequest(key=prefix, range_end=end))).kvs

    async def put(self, key: bytes, value: bytes) -> Any:
        return await self._put(self.pb.PutRequest(key=key, value=value))

    async def watch_replay(self, prefix: bytes, first: int) -> int:
        from grpclib.const import Cardinality

        end = prefix[:-1] + bytes([prefix[-1] + 1])
        count = 0
        async with self.channel.request(
            "/etcdserverpb.Watch/Watch",
            cardinality=Cardinality.STREAM_STREAM,
            request_type=self.pb.WatchRequest,
            reply_type=self.pb.WatchResponse,
        ) as stream:
            create = self.pb.WatchCreateRequest(key=prefix, range_end=end, start_revision=first)
            await stream.send_message(self.pb.WatchRequest(create_request=create))
            while count < w.REPLAY_EVENTS:
                response = await stream.recv_message()
                count += len(response.events)
            await stream.cancel()
        return count

    def close(self) -> None:
        self.channel.close()


class GrpcioKV:
    """Range and Put on grpcio's aio channel, called directly (as ``bench/grpc_unary.py`` does):
    grpcio's C core with the least Python around it."""

    def __init__(self, endpoint: str) -> None:
        import grpc

        from puregrpc_etcd._proto import rpc_pb2

        host, port, cacert = _address(endpoint)
        self.pb = rpc_pb2
        if cacert:
            with open(cacert, "rb") as file:
                credentials = grpc.ssl_channel_credentials(root_certificates=file.read())
            self.channel = grpc.aio.secure_channel(f"{host}:{port}", credentials)
        else:
            self.channel = grpc.aio.insecure_channel(f"{host}:{port}")
        self._range = self.channel.unary_unary(
            "/etcdserverpb.KV/Range",
            request_serializer=rpc_pb2.RangeRequest.SerializeToString,
            response_deserializer=rpc_pb2.RangeResponse.FromString,
        )
        self._put = self.channel.unary_unary(
            "/etcdserverpb.KV/Put",
            request_serializer=rpc_pb2.PutRequest.SerializeToString,
            response_deserializer=rpc_pb2.PutResponse.FromString,
        )

    async def get(self, key: bytes) -> Any:
        return await self._range(self.pb.RangeRequest(key=key))

    async def put(self, key: bytes, value: bytes) -> Any:
        return await self._put(self.pb.PutRequest(key=key, value=value))

    async def close(self) -> None:
        await self.channel.close()


class AetcdKV:
    def __init__(self, endpoint: str) -> None:
        import aetcd

        host, port = endpoint.rsplit(":", 1)
        self.client = aetcd.Client(host=host, port=int(port))

    async def get(self, key: bytes) -> Any:
        return await self.client.get(key)

    async def get_prefix(self, prefix: bytes) -> Any:
        return await self.client.get_prefix(prefix)

    async def put(self, key: bytes, value: bytes) -> Any:
        return await self.client.put(key, value)

    async def watch_replay(self, prefix: bytes, first: int) -> int:
        count = 0
        watch = await self.client.watch_prefix(prefix, start_revision=first)
        async for _event in watch:
            count += 1
            if count == w.REPLAY_EVENTS:
                break
        await watch.cancel()
        return count

    def close(self) -> None:
        pass


async def _loop(op: Any, seconds: float, tasks: int, latencies: list[float] | None) -> int:
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

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return done


async def run(
    client_name: str, workload: str, endpoint: str, seconds: float, warmup: float
) -> dict[str, float]:
    kinds = {"aetcd": AetcdKV, "grpclib": GrpclibKV, "grpcio": GrpcioKV}
    kv: Any = kinds[client_name](endpoint)
    if client_name == "aetcd":
        await kv.client.connect()
    try:
        if workload.startswith(("get_", "put_")):
            key, value = b"bench/key", b"x" * 64
            await kv.put(key, value)
            op = (
                (lambda: kv.get(key))
                if workload.startswith("get_")
                else (lambda: kv.put(key, value))
            )
            tasks = w.concurrency(workload)
            await _loop(op, warmup, tasks, None)
            latencies: list[float] | None = [] if tasks == 1 else None
            cpu_start, start = w.cpu_seconds(), time.perf_counter()
            done = await _loop(op, seconds, tasks, latencies)
            result = {"value": done / (time.perf_counter() - start)}
            result["cpu_us"] = (w.cpu_seconds() - cpu_start) / max(done, 1) * 1e6
            if latencies:
                ordered = sorted(latencies)
                result["p50_ms"] = ordered[len(ordered) // 2] * 1000
                result["p99_ms"] = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
            return result
        if workload == "prefix_10k":

            async def get_prefix() -> int:
                return len(await kv.get_prefix(b"bench/prefix/"))

            async def readline() -> str:
                return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

            return await w.prefix_session(get_prefix, warmup, seconds, readline)
        if workload == "watch_replay":
            start = time.perf_counter()
            count = await kv.watch_replay(b"bench/replay/", int(sys.argv[5]))
            return {"value": count / (time.perf_counter() - start)}
    finally:
        closed = kv.close()
        if closed is not None:
            await closed
    raise NotImplementedError(workload)


SUPPORTED = {"get_", "put_", "prefix_10k", "watch_replay"}


def supports(workload: str) -> bool:
    return any(workload.startswith(prefix) for prefix in SUPPORTED)


def main() -> None:
    client_name, workload, endpoint, seconds = sys.argv[1:5]
    warmup = w.warmup_arg(sys.argv, 6)
    print(json.dumps(asyncio.run(run(client_name, workload, endpoint, float(seconds), warmup))))


if __name__ == "__main__":
    main()
