"""One error boundary: what leaves the transport, from unary calls and from streams alike, is a
typed ``EtcdError`` (``_streams.py``, ``_outcome.py``); the transport's own ``grpc.RpcError`` is
only ever its ``__cause__``."""

from __future__ import annotations

import pytest

import puregrpc_etcd as etcd
from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd import grpc
from puregrpc_etcd._proto import rpc_pb2


def assert_typed(error: BaseException) -> None:
    assert isinstance(error, etcd.EtcdError)
    assert not isinstance(error, grpc.RpcError)
    assert isinstance(error.__cause__, grpc.RpcError)


async def test_a_stream_past_its_deadline_raises_a_typed_error(client: etcd.Client) -> None:
    async def receive_until_the_deadline() -> None:
        async with client._stream(rpcs.WATCH, timeout=0.05) as stream:
            while True:  # no watch created: nothing arrives before the deadline
                await stream.receive_message()

    with pytest.raises(etcd.DeadlineExceededError) as caught:
        await receive_until_the_deadline()
    assert_typed(caught.value)


async def test_a_stream_the_server_refuses_raises_a_typed_error(client: etcd.Client) -> None:
    unknown = rpcs.Rpc("/etcdserverpb.KV/NoSuchMethod", rpc_pb2.RangeResponse, repeatable=True)

    async def call_it() -> None:
        async with client._stream(unknown) as stream:
            await stream.send_message(rpc_pb2.RangeRequest(key=b"k"))
            await stream.done_writing()
            async for _ in stream:
                pass

    with pytest.raises(etcd.RpcError) as caught:
        await call_it()
    assert caught.value.code == grpc.StatusCode.UNIMPLEMENTED
    assert_typed(caught.value)


async def test_a_unary_call_the_server_refuses_raises_a_typed_error(client: etcd.Client) -> None:
    unknown = rpcs.Rpc("/etcdserverpb.KV/NoSuchMethod", rpc_pb2.RangeResponse, repeatable=True)
    with pytest.raises(etcd.RpcError) as caught:
        await client._unary(unknown, rpc_pb2.RangeRequest(key=b"k"))
    assert caught.value.code == grpc.StatusCode.UNIMPLEMENTED
    assert_typed(caught.value)
