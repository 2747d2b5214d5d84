"""TLS for a channel: the context it dials with, chosen without changing the caller's, and the
record layer it runs (``TlsStream``).

gRPC needs ALPN ``h2`` (etcd answers HTTP/1.1 otherwise), but an ``ssl.SSLContext`` can be
neither copied (its certificates and keys cannot be read back) nor asked for its ALPN list, and
leaving ``h2`` set on the caller's context would change what their other connections offer.
So the ALPN list a caller's context offers is read from the ClientHello it writes into memory;
when it lacks ``h2``, ``h2`` is offered only while our TLS object is made (OpenSSL copies the
list into each connection when it is created) and the caller's list is put back at once.
"""

from __future__ import annotations

import os
import ssl
import struct
from contextlib import contextmanager
from typing import Iterator, Sequence, Union

import trio

from .endpoints import Endpoint, TlsOption
from .status import RpcError, StatusCode

__all__ = [
    "TlsStream",
    "check_tls_option",
    "default_context",
    "offered_alpn",
    "offering_h2",
    "open_tls",
]

_HANDSHAKE_RECORD = 22
_CLIENT_HELLO = 1
_ALPN_EXTENSION = 16


def default_context() -> ssl.SSLContext:
    """System CAs, hostname checks, ALPN ``h2``: the context of ``tls=True``."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    return context


def check_tls_option(tls: TlsOption, endpoints: Sequence[Endpoint]) -> None:
    """Refuse, before any I/O, what would make a channel quietly weaker than asked.

    ``tls=`` with an ``http://`` endpoint would send that endpoint's calls in plaintext.
    """
    if tls is not None and not isinstance(tls, (bool, ssl.SSLContext)):
        raise TypeError(f"tls must be an ssl.SSLContext, a bool or None, not {type(tls).__name__}")
    if not tls:
        return
    for endpoint in endpoints:
        if endpoint.scheme_tls is False:
            raise ValueError(
                f"endpoint {endpoint.text!r} is http:// but tls= asks for TLS: "
                "use https:// (or leave tls= out for plaintext)"
            )


@contextmanager
def offering_h2(context: ssl.SSLContext) -> Iterator[None]:
    """Make the TLS objects created inside this block offer ALPN ``h2`` on ``context``, and
    leave ``context`` offering what it offered before.

    The block must create its ``SSLObject`` without awaiting: other tasks see the caller's list,
    and only another thread wrapping with the same context at that instant could see ``h2``.
    """
    offered = offered_alpn(context)
    if offered is None or "h2" in offered:
        yield  # already offers h2, or cannot be read: used exactly as given
        return
    context.set_alpn_protocols(["h2", *offered])
    try:
        yield
    finally:
        context.set_alpn_protocols(offered)  # [] clears the list again (OpenSSL)


def offered_alpn(context: ssl.SSLContext) -> list[str] | None:
    """The ALPN protocols a client context offers, read from the ClientHello it writes into
    memory (no I/O, the context unchanged); None when that cannot be told."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    try:
        tls = context.wrap_bio(incoming, outgoing, server_hostname="alpn.check.invalid")
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass  # the ClientHello is written; the handshake waits for a server that never comes
    except (ssl.SSLError, ValueError):
        return None
    return _alpn_of_client_hello(outgoing.read())


def _alpn_of_client_hello(data: bytes) -> list[str] | None:
    try:
        record_type, _, record_length = struct.unpack_from("!BHH", data, 0)
        body = memoryview(data)[5 : 5 + record_length]
        if record_type != _HANDSHAKE_RECORD or body[0] != _CLIENT_HELLO:
            return None
        position = 4 + 2 + 32  # handshake header, legacy version, random
        position += 1 + body[position]  # session id
        position += 2 + struct.unpack_from("!H", body, position)[0]  # cipher suites
        position += 1 + body[position]  # compression methods
        (extensions_end,) = struct.unpack_from("!H", body, position)
        position += 2
        extensions_end += position
        while position + 4 <= extensions_end:
            kind, length = struct.unpack_from("!HH", body, position)
            position += 4
            if kind == _ALPN_EXTENSION:
                return _protocol_names(bytes(body[position + 2 : position + length]))
            position += length
    except (struct.error, IndexError):
        return None
    return []


def _protocol_names(data: bytes) -> list[str]:
    names, position = [], 0
    while position < len(data):
        length = data[position]
        names.append(data[position + 1 : position + 1 + length].decode("ascii", "replace"))
        position += 1 + length
    return names


# A TLS record carries at most 16 KiB of plaintext; one read returns one record.
_RECORD_SIZE = 16384
_TRANSPORT_RECEIVE_SIZE = 256 * 1024


async def open_tls(
    transport: trio.abc.Stream, context: ssl.SSLContext, server_hostname: str
) -> TlsStream:
    """A ``TlsStream`` over ``transport`` whose handshake is done: certificate and host name
    checked as ``context`` says, ALPN ``h2`` offered and selected by the server.
    Closes ``transport`` on failure."""
    try:
        with offering_h2(context):
            stream = TlsStream(transport, context, server_hostname)
    except BaseException:  # a host name the ssl module refuses (ValueError), say
        await trio.aclose_forcefully(transport)
        raise
    try:
        await stream.do_handshake()
        _check_alpn(stream.selected_alpn_protocol())
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


def _check_alpn(chosen: str | None) -> None:
    """gRPC runs on HTTP/2 only: a server that picks another protocol, or none (a TLS endpoint
    that is not gRPC's, such as an HTTPS proxy without ALPN), would fail later and obscurely."""
    if chosen == "h2":
        return
    if chosen is None:
        details = "server selected no ALPN protocol; gRPC needs h2 (not a gRPC endpoint?)"
    else:
        details = f"server chose ALPN {chosen!r}, not h2"
    raise RpcError(StatusCode.UNAVAILABLE, details)


class TlsStream(trio.abc.Stream):
    """TLS over a trio stream through ``ssl.MemoryBIO``, for one reader and one writer task.

    ``trio.SSLStream`` is general (any number of tasks, renegotiation, ``unwrap``) and pays for
    it on every call; worse, it hands back one TLS record per ``receive_some``, so 128 replies
    arriving in a few records reach the connection a record at a time, and each woken caller
    then writes its next request on its own. Here one ``receive_some`` decrypts everything one
    transport read brought (up to ``max_bytes``), and one ``send_all`` encrypts and writes all it
    is given in one transport write.

    Bounds against a hostile peer: one transport read (256 KiB) is buffered at a time, and
    ``receive_some`` returns at most ``max_bytes``. TLS failures raise
    ``ssl.SSLError`` (an ``OSError``); an end of the connection without ``close_notify`` is an
    end of stream like any other (gRPC frames tell a cut reply from a whole one).
    """

    def __init__(
        self, transport: trio.abc.Stream, context: ssl.SSLContext, server_hostname: str
    ) -> None:
        self.transport = transport
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_hostname
        )
        self._eof = False
        self._sending = False
        self._send_done = trio.lowlevel.ParkingLot()
        self._broken: BaseException | None = None

    def selected_alpn_protocol(self) -> str | None:
        return self._tls.selected_alpn_protocol()

    async def do_handshake(self) -> None:
        tls = self._tls
        while True:
            try:
                tls.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            if self._outgoing.pending:
                await self._send_pending()
            if done:
                return
            if not await self._fill():
                raise trio.BrokenResourceError("connection closed in the TLS handshake")

    async def _fill(self) -> bool:
        """One transport read into the TLS layer; False at the end of the stream."""
        data = await self.transport.receive_some(_TRANSPORT_RECEIVE_SIZE)
        if not data:
            self._eof = True
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        limit = _TRANSPORT_RECEIVE_SIZE if max_bytes is None else max_bytes
        data = self._decrypt(limit)
        if data:
            await trio.lowlevel.checkpoint()  # what an earlier read left over
            return data
        while not self._eof:
            if not await self._fill():
                break
            data = self._decrypt(limit)
            if self._outgoing.pending:
                await self._send_pending()  # a reply the TLS layer owes (TLS 1.3 key update)
            if data:
                return data
        return self._decrypt(limit)  # what came with the end, then b"" from here on

    def _decrypt(self, limit: int) -> bytes:
        """The plaintext of the records buffered, up to ``limit`` bytes (a record cut there
        stays readable: ``tls.pending()``)."""
        tls, incoming = self._tls, self._incoming
        chunks = []
        size = 0
        # A record read leaves the rest in the BIO, so an empty BIO means nothing is left to
        # decrypt (a partial record waits inside OpenSSL: the next read raises want-read).
        while (incoming.pending or tls.pending()) and size < limit:
            try:
                chunk = tls.read(min(_RECORD_SIZE, limit - size))
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self._eof = True  # close_notify, or the end after it was written into the BIO
                break
            if not chunk:
                self._eof = True  # close_notify
                break
            chunks.append(chunk)
            size += len(chunk)
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    async def send_all(self, data: Union[bytes, bytearray, memoryview]) -> None:
        if not data:
            await trio.lowlevel.checkpoint()
            return
        if self._broken is None:
            self._tls.write(data)  # into memory: all of it, at once
        await self._send_pending()

    async def _send_pending(self) -> None:
        """Write what the TLS layer has produced, in order: the task already writing sends what
        was queued meanwhile too, and the others wait for it."""
        while self._sending:
            await self._send_done.park()
        if self._broken is not None:
            raise trio.BrokenResourceError("TLS stream broken by an earlier write") from None
        outgoing = self._outgoing
        if not outgoing.pending:
            await trio.lowlevel.checkpoint()
            return
        self._sending = True
        try:
            while outgoing.pending:
                await self.transport.send_all(outgoing.read())
        except BaseException as exc:
            self._broken = exc  # some unknown part went out: nothing more may follow
            raise
        finally:
            self._sending = False
            if self._send_done:
                self._send_done.unpark_all()

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Send ``close_notify`` (without waiting for the peer's), then close the transport.

        The alert is written without waiting when the transport is a socket, so that it also
        goes out under ``trio.aclose_forcefully`` (how connections are closed): the server sees
        a clean end rather than a truncated one."""
        try:
            if self._broken is None and not self._sending and not self._eof:
                try:
                    self._tls.unwrap()
                except (ssl.SSLError, ValueError):
                    pass  # want-read (the peer's close_notify, not awaited), or never set up
                if self._outgoing.pending:
                    _write_now(self.transport, self._outgoing.read())
        finally:
            await self.transport.aclose()


def _write_now(transport: trio.abc.Stream, data: bytes) -> None:
    """Best effort: ``data`` into the socket's buffer now, or nowhere (the connection is
    closing either way; a full buffer or an unusable socket drops it)."""
    if isinstance(transport, trio.SocketStream):
        try:
            os.write(transport.socket.fileno(), data)  # non-blocking; fileno -1 once closed
        except OSError:
            pass
