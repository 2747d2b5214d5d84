"""Calls under trio: unary-unary without any task or lock of its own, and ``Stream`` for
every other cardinality. Deadlines become grpc-timeout and DEADLINE_EXCEEDED; a call left
early (cancelled, timed out, abandoned) resets its stream without awaiting anything.

The channel hands each call its ``Connector`` (connector.py), which gives a live connection
(connection.py); nothing here knows the channel, and nothing below calls back up."""

from __future__ import annotations

import math
import random
from types import TracebackType
from typing import AsyncIterator, Generic, Optional, Type, TypeVar

import trio
from google.protobuf.message import Message

from .call_state import CallState
from .connection import Connection, ConnectionUnusable
from .connector import Connector
from .deadlines import deadline_error
from .framing import encode_message
from .status import RpcError, StatusCode

__all__ = ["Stream", "StreamContext", "encode", "unary_unary"]

ReplyT = TypeVar("ReplyT", bound=Message)

# Calls that wait for a slot on a connection that then starts draining move to a fresh one;
# a bound keeps a server that GOAWAYs every connection from looping us forever.
_MAX_OPEN_ATTEMPTS = 8
# A refused call is sent again at once, then after short growing pauses: a server that counts
# a finished stream as open a moment too long (grpcio's does) refuses now and then, and under
# load the same call may be refused several times in a row before it catches up.
_TRANSPARENT_RETRIES = 8
_RETRY_PAUSE_FIRST = 0.002
_RETRY_PAUSE_MAX = 0.1


def encode(message: Message, limit: int) -> bytes:
    """A request message with its gRPC prefix; RESOURCE_EXHAUSTED past ``limit``."""
    payload = message.SerializeToString()
    if len(payload) > limit:
        raise RpcError(
            StatusCode.RESOURCE_EXHAUSTED,
            f"trying to send message larger than max ({len(payload)} vs. {limit})",
            not_processed=True,
        )
    return encode_message(payload)


def _decode(reply_type: Type[ReplyT], data: bytes) -> ReplyT:
    try:
        return reply_type.FromString(data)
    except Exception as exc:  # protobuf raises DecodeError, and more
        raise RpcError(
            StatusCode.INTERNAL, f"failed to parse the {reply_type.__name__} reply: {exc}"
        ) from None


def _final_error(call: CallState, deadline: float, timeout: float | None) -> RpcError:
    error = call.error
    assert error is not None
    # A server that cancels because our deadline passed sends CANCEL, which reads CANCELLED;
    # report what really happened (PROTOCOL-HTTP2.md, "Client Cancellation").
    if (
        error.code is StatusCode.CANCELLED
        and timeout is not None
        and (trio.current_time() >= deadline)
    ):
        return deadline_error(timeout)
    return error


async def _open_call(
    connector: Connector, call: CallState, method: str, metadata: bytes
) -> Connection:
    for _attempt in range(_MAX_OPEN_ATTEMPTS):
        connection = await connector.get_connection()
        try:
            await connection.start_call(call, method, trio.current_effective_deadline(), metadata)
        except ConnectionUnusable:
            continue
        return connection
    raise RpcError(StatusCode.UNAVAILABLE, "no connection would take the call", not_processed=True)


async def _open_call_within(
    connector: Connector, call: CallState, method: str, metadata: bytes, deadline: float
) -> Connection | None:
    """``_open_call`` bounded by ``deadline``; None when it passed first."""
    with trio.CancelScope(deadline=deadline):
        return await _open_call(connector, call, method, metadata)
    return None


async def unary_unary(
    connector: Connector,
    method: str,
    payload: bytes,
    headers: bytes,
    reply_type: Type[ReplyT],
    *,
    timeout: float | None,
) -> ReplyT:
    """One call: ``payload`` (from ``encode``) with the metadata block ``headers``
    (``metadata.metadata_block``) out, one ``reply_type`` back."""
    deadline = math.inf if timeout is None else trio.current_time() + timeout
    for attempt in range(1 + _TRANSPARENT_RETRIES):
        call = CallState(connector.max_receive_message_size)
        connection = connector.ready_connection()
        if connection is None or not connection.try_start_call(
            call, method, min(deadline, trio.current_effective_deadline()), headers
        ):
            # Connecting, or waiting for a stream slot: the slow path, under a cancel scope.
            connection = await _open_call_within(connector, call, method, headers, deadline)
            if connection is None:
                raise deadline_error(timeout)
        try:
            if timeout is not None:
                connection.expire_at(call, deadline, timeout)
            await connection.send(call, payload, end_stream=True)
            while call.code is None:
                await connection.wait(call, sending=False)
        except BaseException:
            if call.code is None:
                connection.cancel(call, RpcError(StatusCode.CANCELLED, "cancelled by the client"))
            raise
        error = call.error
        if error is None:
            break
        if not error.not_processed or attempt == _TRANSPARENT_RETRIES:
            raise _final_error(call, deadline, timeout)
        # REFUSED_STREAM or beyond a GOAWAY: the server never saw it, so sending it again is
        # safe for any method (grpc's "transparent retry"); the deadline still bounds it.
        if attempt == 0:
            await trio.lowlevel.checkpoint()
        else:
            pause = min(_RETRY_PAUSE_MAX, _RETRY_PAUSE_FIRST * 2.0 ** (attempt - 1))
            await trio.sleep_until(min(deadline, trio.current_time() + pause * random.random()))
            if trio.current_time() >= deadline:
                raise deadline_error(timeout)
    messages = call.messages
    if len(messages) != 1:
        raise RpcError(
            StatusCode.UNIMPLEMENTED,
            f"expected one reply message for a unary call, received {len(messages)}",
            trailing_metadata=call.trailing_metadata or (),
        )
    return _decode(reply_type, messages.popleft())


class Stream(Generic[ReplyT]):
    """A streaming call (any cardinality). One task may send while another receives."""

    def __init__(
        self,
        connection: Connection,
        *,
        call: CallState,
        reply_type: Type[ReplyT],
        deadline: float,
        timeout: float | None,
        max_send_message_size: int,
    ) -> None:
        self._max_send_message_size = max_send_message_size
        self._connection = connection
        self._call = call
        self._reply_type = reply_type
        self._deadline = deadline
        self._timeout = timeout
        self._done_writing = False

    # -- outcome ------------------------------------------------------------------------------

    @property
    def status(self) -> StatusCode | None:
        """The final status code, None while the call runs."""
        return self._call.code

    @property
    def details(self) -> str | None:
        """The final status message, None while the call runs."""
        return self._call.details if self._call.code is not None else None

    @property
    def error(self) -> RpcError | None:
        """The RpcError the call ended with, None while it runs or if it ended OK."""
        return self._call.error

    @property
    def initial_metadata(self) -> tuple[tuple[str, str | bytes], ...] | None:
        """The server's response headers as metadata; None until they arrive."""
        call = self._call
        if call.response_headers is None and call.code is not None:
            return ()
        return call.initial_metadata

    @property
    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...] | None:
        """The server's trailers as metadata; None until the call ends."""
        call = self._call
        if call.trailers is None and call.code is not None:
            return call.error.trailing_metadata if call.error is not None else ()
        return call.trailing_metadata

    # -- operations ---------------------------------------------------------------------------

    async def send_message(self, message: Message) -> None:
        """Send one request message, waiting for flow-control window as needed. Raises the
        call's RpcError if it has already failed; after an OK end the message is dropped."""
        if self._done_writing:
            raise trio.ClosedResourceError("send_message after done_writing")
        payload = encode(message, self._max_send_message_size)
        call = self._call
        if call.code is None:
            with trio.CancelScope(deadline=self._deadline) as scope:
                await self._connection.send(call, payload, end_stream=False)
            if scope.cancelled_caught:
                raise self._expire()
        if call.error is not None:
            raise _final_error(call, self._deadline, self._timeout)

    async def done_writing(self) -> None:
        """Half-close: tell the server no more request messages follow."""
        if self._done_writing:
            return
        self._done_writing = True
        call = self._call
        if call.code is None:
            self._connection.end_stream(call)
            await self._connection.flush()

    async def receive_message(self) -> ReplyT | None:
        """The next reply, or None when the call ended OK; raises RpcError otherwise.
        Cancelling a receive leaves the stream usable."""
        call = self._call
        connection = self._connection
        if call.messages:
            # A message is at hand: honour a pending cancellation before taking it, never after.
            await trio.lowlevel.checkpoint_if_cancelled()
            message = connection.take(call)
            await trio.lowlevel.cancel_shielded_checkpoint()
        elif call.code is None:
            with trio.CancelScope(deadline=self._deadline) as scope:
                message = await connection.receive(call)
            if scope.cancelled_caught:
                raise self._expire()
        else:
            message = None
            await trio.lowlevel.checkpoint()
        if message is not None:
            return _decode(self._reply_type, message)
        if call.error is not None:
            raise _final_error(call, self._deadline, self._timeout)
        return None

    async def receive_initial_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        """Wait for the server's response headers (empty for a Trailers-Only response)."""
        call = self._call
        with trio.CancelScope(deadline=self._deadline) as scope:
            while call.response_headers is None and call.code is None:
                await self._connection.wait(call, sending=False)
        if scope.cancelled_caught:
            raise self._expire()
        return self.initial_metadata or ()

    def __aiter__(self) -> AsyncIterator[ReplyT]:
        return self

    async def __anext__(self) -> ReplyT:
        message = await self.receive_message()
        if message is None:
            raise StopAsyncIteration
        return message

    def cancel(self) -> None:
        """End the call now (RST_STREAM CANCEL); its status becomes CANCELLED."""
        if self._call.code is None:
            self._connection.cancel(
                self._call, RpcError(StatusCode.CANCELLED, "call cancelled by the client")
            )

    def _expire(self) -> RpcError:
        error = deadline_error(self._timeout)
        call = self._call
        if call.code is None:
            self._connection.cancel(call, error)
        return _final_error(call, self._deadline, self._timeout) if call.error else error


class StreamContext(Generic[ReplyT]):
    """``async with channel.stream(...) as stream``: opens the call on entry (HEADERS sent);
    on exit, a call that has not ended is cancelled."""

    def __init__(
        self,
        connector: Connector,
        method: str,
        headers: bytes,
        reply_type: Type[ReplyT],
        *,
        timeout: float | None,
        max_send_message_size: int,
    ) -> None:
        self._connector = connector
        self._method = method
        self._headers = headers
        self._reply_type = reply_type
        self._timeout = timeout
        self._max_send_message_size = max_send_message_size
        self._stream: Optional[Stream[ReplyT]] = None

    async def __aenter__(self) -> Stream[ReplyT]:
        timeout = self._timeout
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        call = CallState(self._connector.max_receive_message_size)
        connection: Optional[Connection] = None
        with trio.CancelScope(deadline=deadline) as scope:
            connection = await _open_call(self._connector, call, self._method, self._headers)
            # Shielded inside: a cancellation cannot land between the HEADERS and the flush.
            await connection.flush()
        if scope.cancelled_caught or connection is None:
            raise deadline_error(timeout)
        self._stream = Stream(
            connection,
            call=call,
            reply_type=self._reply_type,
            deadline=deadline,
            timeout=timeout,
            max_send_message_size=self._max_send_message_size,
        )
        return self._stream

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        if self._stream is not None:
            self._stream.cancel()
