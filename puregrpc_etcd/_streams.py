"""Where etcd streams leave the transport: ``grpc.RpcError`` becomes the typed ``EtcdError``.

Unary calls are converted in ``client.Client._unary`` (through ``_outcome.final_error``);
streaming calls (Watch, LeaseKeepAlive, Snapshot, Observe) here, once, for opening the stream
and for every message sent or received. Feature modules therefore see only the errors of
``errors.py``, never the transport's own ``grpc.status.RpcError``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, AsyncIterator, Generic, TypeVar

from puregrpc_etcd.errors import from_rpc_error
from puregrpc_etcd.grpc.status import RpcError

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from puregrpc_etcd._rpcs import Rpc
    from puregrpc_etcd.grpc.call import Stream
    from puregrpc_etcd.grpc.channel import Channel
    from puregrpc_etcd.grpc.metadata import Metadata

__all__ = ["EtcdStream", "etcd_stream"]

M = TypeVar("M", bound="Message")


class EtcdStream(Generic[M]):
    """A ``grpc.Stream`` whose failures are raised as typed ``EtcdError`` subclasses (the
    transport's error is their ``__cause__``)."""

    __slots__ = ("_stream",)

    def __init__(self, stream: Stream[M]) -> None:
        self._stream = stream

    async def send_message(self, message: Message) -> None:
        try:
            await self._stream.send_message(message)
        except RpcError as exc:
            raise from_rpc_error(exc) from exc

    async def done_writing(self) -> None:
        try:
            await self._stream.done_writing()
        except RpcError as exc:
            raise from_rpc_error(exc) from exc

    async def receive_message(self) -> M | None:
        """The next reply, or None once the call ended with OK."""
        try:
            return await self._stream.receive_message()
        except RpcError as exc:
            raise from_rpc_error(exc) from exc

    def __aiter__(self) -> EtcdStream[M]:
        return self

    async def __anext__(self) -> M:
        try:
            message = await self._stream.receive_message()
        except RpcError as exc:
            raise from_rpc_error(exc) from exc
        if message is None:
            raise StopAsyncIteration
        return message

    def cancel(self) -> None:
        """End the call now (its status becomes CANCELLED)."""
        self._stream.cancel()


@asynccontextmanager
async def etcd_stream(
    channel: Channel, rpc: Rpc[M], timeout: float | None, metadata: Metadata
) -> AsyncIterator[EtcdStream[M]]:
    """Open a call of ``rpc`` on ``channel`` as an ``EtcdStream``; a failure to open it, or
    one the transport raises when it closes, is typed too."""
    try:
        async with channel.stream(
            rpc.path, rpc.reply_type, timeout=timeout, metadata=metadata
        ) as stream:
            yield EtcdStream(stream)
    except RpcError as exc:
        raise from_rpc_error(exc) from exc
