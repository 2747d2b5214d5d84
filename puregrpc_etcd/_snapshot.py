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

from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.errors import EtcdError

if TYPE_CHECKING:
    from puregrpc_etcd._base import ClientBase

__all__ = ["Progress", "SnapshotTarget", "SnapshotVerifier", "save_snapshot"]

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
    output = await trio.open_file(partial, "wb", opener=_owner_only)
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


def _owner_only(path: str, flags: int) -> int:
    # A snapshot holds every key and value: readable by its owner only, as etcdctl writes it.
    # Created, never opened: whatever already sits at the path (a symlink put there to have
    # the snapshot written elsewhere, or a file others may read) is neither followed nor reused.
    create = (flags & ~os.O_TRUNC) | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, create, 0o600)
    except FileExistsError:
        # Most likely the leftover of a snapshot that died; unlink removes a symlink itself,
        # not its target. Something appearing there again meanwhile is an error.
        os.unlink(path)
        return os.open(path, create, 0o600)


class SnapshotVerifier:
    """Sans-IO bookkeeping of a snapshot stream: sizes, and the SHA-256 of all but the last
    32 bytes, which must equal those bytes once the stream ends."""

    __slots__ = ("_digest", "_tail", "received", "total")

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._tail = b""
        self.received = 0
        #: Database size plus digest, known from the first chunk's ``remaining_bytes``.
        self.total: int | None = None

    def feed(self, blob: bytes, remaining_bytes: int) -> None:
        self.received += len(blob)
        if self.total is None:
            self.total = self.received + remaining_bytes + _DIGEST_SIZE
        if len(blob) >= _DIGEST_SIZE:
            self._digest.update(self._tail)
            self._digest.update(memoryview(blob)[:-_DIGEST_SIZE])
            self._tail = blob[-_DIGEST_SIZE:]
        else:
            joined = self._tail + blob
            self._digest.update(joined[:-_DIGEST_SIZE])
            self._tail = joined[-_DIGEST_SIZE:]

    def check(self) -> None:
        """Raise ``EtcdError`` unless the whole snapshot and a matching digest arrived."""
        if self.total is None:
            raise EtcdError("the server ended the snapshot without sending any data")
        if self.received != self.total:
            raise EtcdError(
                f"the snapshot is incomplete: received {self.received} of {self.total} bytes"
            )
        if self._tail != self._digest.digest():
            raise EtcdError("the snapshot's SHA-256 does not match its data; it is corrupt")


async def _receive(
    client: ClientBase, output: Writable, progress: Progress | None, timeout: float | None
) -> int:
    verifier = SnapshotVerifier()
    async with client._stream(rpcs.SNAPSHOT, timeout=timeout) as stream:
        await stream.send_message(rpc_pb2.SnapshotRequest())
        await stream.done_writing()
        async for reply in stream:
            blob = reply.blob
            if not blob:
                continue
            written = output.write(blob)
            if inspect.isawaitable(written):
                await written
            verifier.feed(blob, reply.remaining_bytes)
            if progress is not None:
                progress(verifier.received, verifier.total)
    verifier.check()
    return verifier.received
