"""Converting 10,000 KeyValues of a RangeResponse into results, next to protobuf's own parse.

Run ``python -m bench.kv_convert`` (CPython or PyPy). It prints the best of N runs of: parsing the
serialized reply, building the ``GetResponse``, and building it then touching every ``KeyValue``
(key and value), each with its ratio to the parse.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from puregrpc_etcd._kv_requests import get_response
from puregrpc_etcd._proto import kv_pb2, rpc_pb2

KEYS = 10_000
RUNS = 30


def serialized_reply() -> bytes:
    reply = rpc_pb2.RangeResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, revision=KEYS + 1, raft_term=3),
        count=KEYS,
    )
    reply.kvs.extend(
        kv_pb2.KeyValue(
            key=b"bench/prefix/key-%08d" % index,
            value=b"v" * 64,
            create_revision=index + 2,
            mod_revision=index + 2,
            version=1,
        )
        for index in range(KEYS)
    )
    return reply.SerializeToString()


def best_ms(work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best * 1e3


def main() -> None:
    data = serialized_reply()
    parsed = rpc_pb2.RangeResponse.FromString(data)

    def parse() -> object:
        return rpc_pb2.RangeResponse.FromString(data)

    def convert() -> object:
        return get_response(parsed, b"")

    def convert_and_read() -> object:
        total = 0
        for kv in get_response(parsed, b"").kvs:
            total += len(kv.key) + len(kv.value)
        return total

    def read_protobuf_only() -> object:
        total = 0
        for kv in parsed.kvs:
            total += len(kv.key) + len(kv.value)
        return total

    parse_ms = best_ms(parse)
    print(f"{sys.implementation.name} {sys.version.split()[0]}, {KEYS} KeyValues, best of {RUNS}")
    print(f"  protobuf parse                         {parse_ms:8.3f} ms")
    for label, work in (
        ("GetResponse (kvs wrapped lazily)", convert),
        ("GetResponse + read every key/value", convert_and_read),
        ("protobuf alone: read every key/value", read_protobuf_only),
    ):
        ms = best_ms(work)
        print(f"  {label:38} {ms:8.3f} ms  ({ms / parse_ms:5.2f}x the parse)")


if __name__ == "__main__":
    main()
