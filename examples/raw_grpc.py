"""The generic gRPC layer (``puregrpc_etcd.grpc``) on its own: etcd's protobuf messages sent
by hand, a unary call and a bidirectional stream, with metadata and status codes in view.

It knows nothing of etcd: the same calls work for any gRPC service with protobuf messages.

Run: python examples/raw_grpc.py [ENDPOINT]   (default: $ETCDCTL_ENDPOINTS, else 127.0.0.1:2379)
"""

from __future__ import annotations

import os
import sys

import trio

from puregrpc_etcd import grpc
from puregrpc_etcd._proto import rpc_pb2

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ETCDCTL_ENDPOINTS")
ENDPOINTS = (ENDPOINT or "127.0.0.1:2379").split(",")


async def main() -> None:
    async with grpc.Channel(ENDPOINTS) as channel:
        put = rpc_pb2.PutRequest(key=b"examples/raw_grpc/k", value=b"v")
        reply = await channel.unary_unary("/etcdserverpb.KV/Put", put, rpc_pb2.PutResponse,
                                          timeout=5.0)  # fmt: skip
        print("Put at revision", reply.header.revision)

        # A bidirectional stream: create a watch, make a change, read the event.
        async with channel.stream("/etcdserverpb.Watch/Watch", rpc_pb2.WatchResponse) as stream:
            create = rpc_pb2.WatchCreateRequest(key=b"examples/raw_grpc/k")
            await stream.send_message(rpc_pb2.WatchRequest(create_request=create))
            with trio.fail_after(10):
                async for message in stream:
                    if message.created:
                        await channel.unary_unary("/etcdserverpb.KV/DeleteRange",
                                                  rpc_pb2.DeleteRangeRequest(key=put.key),
                                                  rpc_pb2.DeleteRangeResponse)  # fmt: skip
                    elif message.events:
                        event = message.events[0]
                        print("watch event:", event.type, event.kv.key)
                        break
            await stream.done_writing()

        # A failure comes back as grpc.RpcError with its status code and message.
        try:
            await channel.unary_unary("/etcdserverpb.KV/Range",
                                      rpc_pb2.RangeRequest(key=b"k", revision=10**12),
                                      rpc_pb2.RangeResponse)  # fmt: skip
        except grpc.RpcError as exc:
            print("status:", exc.code.name, "-", exc.details)


if __name__ == "__main__":
    trio.run(main)
