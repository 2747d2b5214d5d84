"""Stream a member's database snapshot (Maintenance.Snapshot) to a path or a file object.

etcd sends the bbolt file in chunks followed by the SHA-256 of the file; both go to the output,
which is the layout ``etcdutl snapshot restore`` verifies, and the digest is checked here too.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from typing import TYPE_CHECKING, Callable, Optional, Protocol, Union

import trio

from puregrpc_etcd import grpc
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.errors import EtcdError, from_rpc_error

if TYPE_CHECKING:
    from puregrpc_etcd._base import ClientBase

__all__ = ["Progress", "SnapshotTarget", "save_snapshot"]

_METHOD = "/etcdserverpb.Maintenance/Snapshot"
_DIGEST_SIZE = hashlib.sha256().digest_size


class Writable(Protocol):
    """A binary file object; ``write`` may be a coroutine function (trio's async files)."""

    def write(self, data: bytes, /) -> object: ...


SnapshotTarget = Union[str, "os.PathLike[str]", Writable]
#: ``progress(bytes_received, total_bytes)``; the total is None until the server tells it.
Progress = Callable[[int, Optional[int]], None]


async def save_snapshot(
    client: ClientBase,
    file: SnapshotTarget,
    *,
    progress: Progress | None = None,
    timeout: float | None = None,
) -> int:
    """Write a snapshot of the connected member to ``file``; returns the bytes written."""
    if isinstance(file, (str, os.PathLike)):
        return await _save_to_path(client, os.fspath(file), progress, timeout)
    if not callable(getattr(file, "write", None)):
        raise TypeError(f"file must be a path or a binary file object, not {type(file).__name__}")
    return await _receive(client, file, progress, timeout)


async def _save_to_path(
    client: ClientBase, path: str, progress: Progress | None, timeout: float | None
) -> int:
    # Written beside the target and renamed only once complete and verified, so that a failed
    # or cancelled snapshot never leaves a file that looks like a backup.
    partial = path + ".part"
    output = await trio.open_file(partial, "wb")
    try:
        try:
            size = await _receive(client, output, progress, timeout)
            await output.flush()
            await trio.to_thread.run_sync(os.fsync, output.fileno())
        finally:
            with trio.CancelScope(shield=True):
                await output.aclose()
        os.replace(partial, path)
    except BaseException:
        try:
            os.unlink(partial)
        except FileNotFoundError:
            pass
        raise
    return size


async def _receive(
    client: ClientBase, output: Writable, progress: Progress | None, timeout: float | None
) -> int:
    digest = hashlib.sha256()
    # The last _DIGEST_SIZE bytes seen so far: the trailing digest once the stream ends.
    tail = b""
    received = 0
    total: int | None = None
    try:
        async with client._stream(_METHOD, rpc_pb2.SnapshotResponse, timeout=timeout) as stream:
            await stream.send_message(rpc_pb2.SnapshotRequest())
            await stream.done_writing()
            async for reply in stream:
                blob = reply.blob
                if not blob:
                    continue
                written = output.write(blob)
                if inspect.isawaitable(written):
                    await written
                received += len(blob)
                if total is None:
                    total = received + reply.remaining_bytes + _DIGEST_SIZE
                if len(blob) >= _DIGEST_SIZE:
                    digest.update(tail)
                    digest.update(memoryview(blob)[:-_DIGEST_SIZE])
                    tail = blob[-_DIGEST_SIZE:]
                else:
                    joined = tail + blob
                    digest.update(joined[:-_DIGEST_SIZE])
                    tail = joined[-_DIGEST_SIZE:]
                if progress is not None:
                    progress(received, total)
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from None
    _check(received, total, tail, digest.digest())
    return received


def _check(received: int, total: int | None, tail: bytes, expected: bytes) -> None:
    if total is None:
        raise EtcdError("the server ended the snapshot without sending any data")
    if received != total:
        raise EtcdError(f"the snapshot is incomplete: received {received} of {total} bytes")
    if tail != expected:
        raise EtcdError("the snapshot's SHA-256 does not match its data; it is corrupt")
