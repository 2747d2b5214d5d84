"""A local, always-current copy of a prefix: ``async with client.mirror("config/") as mirror``.

One consistent listing at one revision, then a watch from the revision after it; when compaction
outruns the watch it lists again (a "resync"): the copy never serves a state that skipped events.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Callable, Deque, Literal

import trio

from puregrpc_etcd import _kv_requests
from puregrpc_etcd._client_contract import check_timeout
from puregrpc_etcd._keys import KeyLike, to_bytes
from puregrpc_etcd.errors import CompactedError, EtcdError
from puregrpc_etcd.kv import KVMixin
from puregrpc_etcd.watch import WatchMixin

if TYPE_CHECKING:
    from puregrpc_etcd.types import KeyValue
    from puregrpc_etcd.watch import Event, Watcher

__all__ = ["DEFAULT_MAX_BACKLOG", "Mirror", "MirrorChange", "MirrorChanges", "MirrorMixin"]

ChangeKind = Literal["put", "delete", "resync"]

#: Unread changes an iterator of ``Mirror`` keeps before it reports a "resync" instead.
DEFAULT_MAX_BACKLOG = 10_000

# How long wait_for() lets events arrive on their own before it asks the server, and the longest
# it waits between two questions.
_FIRST_CHECK_DELAY = 0.05
_MAX_CHECK_DELAY = 1.0


@dataclass(frozen=True)
class MirrorChange:
    """One change of a mirror, in revision order.

    - ``kind`` "put": ``key`` now holds ``kv``; ``prev_kv`` is what the mirror held before
      (None for a new key).
    - ``kind`` "delete": ``key`` is gone; ``prev_kv`` is its last value (``kv`` is None).
    - ``kind`` "resync": changes were skipped, because the server compacted the history the
      mirror needed (it listed the prefix again) or because this iterator fell more than
      ``max_backlog`` changes behind. ``key`` is empty; re-read ``Mirror.items()``, which is the
      state at ``revision``; later changes follow on from there.
    """

    __slots__ = ("key", "kind", "kv", "prev_kv", "revision")
    kind: ChangeKind
    key: bytes
    kv: KeyValue | None
    prev_kv: KeyValue | None
    revision: int


class MirrorChanges:
    """The changes of a mirror from the moment it was made, as an async iterator.

    It ends when the mirror is closed, and raises the mirror's error if it fails. A consumer more
    than ``max_backlog`` changes behind gets one "resync" change instead of the ones it missed.
    """

    __slots__ = ("__weakref__", "_mirror", "_overflowed", "_queue")

    def __init__(self, mirror: Mirror) -> None:
        self._mirror = mirror
        self._queue: Deque[MirrorChange] = deque()
        self._overflowed = False

    def _push(self, change: MirrorChange, max_backlog: int) -> None:
        if self._overflowed:
            return
        if len(self._queue) >= max_backlog:
            self._queue.clear()
            self._overflowed = True
        else:
            self._queue.append(change)

    def __aiter__(self) -> MirrorChanges:
        return self

    async def __anext__(self) -> MirrorChange:
        mirror = self._mirror
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._overflowed:
                self._overflowed = False
                return MirrorChange("resync", b"", None, None, mirror.revision)
            mirror._raise_if_failed()
            if mirror._closed:
                raise StopAsyncIteration
            await mirror._changed.park()


class Mirror:
    """A local copy of every key under ``prefix``, kept current by a watch.

    Reads (``get``, ``items``, ``len``, ``in``) are local and never wait. ``revision`` is the store
    revision the copy is exactly current as of; ``wait_for(revision)`` waits until it gets
    there, e.g. to read your own writes. ``async for change in mirror`` iterates over the
    changes from then on. Keys are whole keys (the prefix included), as ``get_prefix`` gives them.
    After a failure of its watch (say, permission denied, or the client closed) reads raise that
    error rather than serve a copy that has stopped following the server.
    """

    def __init__(
        self, client: MirrorMixin, prefix: bytes, page_size: int, max_backlog: int
    ) -> None:
        self._client = client
        self.prefix = prefix
        self._page_size = page_size
        self._max_backlog = max_backlog
        self._items: dict[bytes, KeyValue] = {}
        self._revision = 0
        # Bumped on every change of _items, to tell whether the copy moved during an await.
        self._version = 0
        self._resyncs = 0
        self._listed = False
        self._watcher: Watcher | None = None
        self._changed = trio.lowlevel.ParkingLot()
        self._feeds: weakref.WeakSet[MirrorChanges] = weakref.WeakSet()
        self._error: BaseException | None = None
        self._closed = False
        self._stopped = trio.Event()

    # Reading the copy.

    @property
    def revision(self) -> int:
        """The copy is the prefix's exact state at this store revision."""
        return self._revision

    @property
    def resyncs(self) -> int:
        """How many times the mirror listed the prefix again after a compaction."""
        return self._resyncs

    def get(self, key: KeyLike, default: KeyValue | None = None) -> KeyValue | None:
        """The ``KeyValue`` of ``key``, or ``default`` when the mirror does not hold it."""
        self._raise_if_failed()
        return self._items.get(to_bytes(key), default)

    def items(self) -> list[tuple[bytes, KeyValue]]:
        """Every (key, KeyValue) of the copy, in key order (a snapshot: it does not change)."""
        self._raise_if_failed()
        return sorted(self._items.items())

    def __len__(self) -> int:
        self._raise_if_failed()
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        self._raise_if_failed()
        return to_bytes(key) in self._items

    def changes(self) -> MirrorChanges:
        """An async iterator of the changes from now on (``async for change in mirror`` too)."""
        self._raise_if_failed()
        feed = MirrorChanges(self)
        self._feeds.add(feed)
        return feed

    def __aiter__(self) -> MirrorChanges:
        return self.changes()

    async def wait_for(self, revision: int, *, timeout: float | None = None) -> int:
        """Wait until the copy is current as of ``revision`` (or later) and return its revision.

        Revisions without a change under the prefix count too: the mirror asks the server (a
        watch progress request, checked against a count of the prefix) when no event brings it
        there. ``timeout`` raises ``DeadlineExceededError``.
        """
        from puregrpc_etcd.lock import within  # on first use: a one-shot get needs no lock

        target = _kv_requests.check_int(revision, "revision")
        return await within(
            timeout,
            f"the mirror of {self.prefix!r} did not reach revision {target} in {timeout} s",
            self._wait_for(target),
        )

    async def _wait_for(self, target: int) -> int:
        delay = _FIRST_CHECK_DELAY
        while True:
            self._raise_if_failed()
            if self._revision >= target:
                return self._revision
            if self._closed:
                raise EtcdError(f"the mirror of {self.prefix!r} is closed")
            with trio.move_on_after(delay):
                await self._changed.park()
                continue
            await self._catch_up_quietly()
            delay = min(delay * 2, _MAX_CHECK_DELAY)

    async def _catch_up_quietly(self) -> None:
        """Advance ``revision`` over revisions that changed nothing under the prefix.

        The watch's progress notification says up to where the server has sent events. etcd
        before 3.5.8 may send it ahead of events still in flight, so it is believed only if a
        read at that revision agrees: no key changed since ours, and as many keys as we hold.
        """
        watcher = self._watcher
        if watcher is None:  # listing again: the new listing will bring the revision
            return
        version, applied, held = self._version, self._revision, len(self._items)
        progress = await watcher.request_progress()
        if progress <= applied or watcher.pending or self._version != version:
            return
        client = self._client
        try:
            newer = await client.get(
                self.prefix,
                prefix=True,
                revision=progress,
                min_mod_revision=applied + 1,
                keys_only=True,
                limit=1,
            )
            if newer.kvs:
                return
            count = await client.get(self.prefix, prefix=True, revision=progress, count_only=True)
        except CompactedError:
            return  # the watch will fail the same way and resync
        if count.count == held and self._version == version and self._revision == applied:
            self._revision = progress
            self._changed.unpark_all()

    # Following the server.

    async def _follow(self, *, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        """List, watch from the listing on, and list again whenever the watch is compacted."""
        scope = trio.CancelScope()
        started = False

        def ready() -> None:
            nonlocal started
            if not started:
                started = True
                task_status.started(scope)

        try:
            with scope:
                while True:
                    await self._watch_from(await self._list(), ready)
        except Exception as exc:
            if not started:
                raise
            self._error = exc
        finally:
            self._closed = True
            self._stopped.set()
            self._changed.unpark_all()

    async def _watch_from(self, listed: int, ready: Callable[[], None]) -> None:
        """Apply the events after ``listed`` until the watch is compacted (then return)."""
        try:
            # A cache must never skip an event: a burst it cannot keep up with pauses the watch
            # on the server instead of ending the mirror.
            async with self._client.watch(
                self.prefix,
                prefix=True,
                start_revision=listed + 1,
                max_backlog=self._max_backlog,
                on_overflow="pause",
            ) as watcher:
                self._watcher = watcher
                ready()
                async for event in watcher:
                    self._apply(event)
        except CompactedError:
            return
        finally:
            self._watcher = None
        raise EtcdError(f"the watch of the mirror of {self.prefix!r} ended")

    async def _list(self) -> int:
        """Read the whole prefix at one revision and make it the copy; return that revision."""
        client = self._client
        while True:
            head = await client.get(self.prefix, prefix=True, count_only=True)
            revision = head.header.revision
            try:
                items = {
                    kv.key: kv
                    async for kv in client.scan(
                        self.prefix, revision=revision, page_size=self._page_size
                    )
                }
            except CompactedError:
                continue  # compacted while paging: start over at a newer revision
            break
        self._items = items
        self._revision = revision
        self._version += 1
        if self._listed:
            self._resyncs += 1
            self._publish(MirrorChange("resync", b"", None, None, revision))
        self._listed = True
        self._changed.unpark_all()
        return revision

    def _apply(self, event: Event) -> None:
        # No checkpoint between the events of one revision (they arrive together): nobody sees
        # a transaction half applied.
        kv = event.kv
        key = kv.key
        revision = kv.mod_revision
        if event.type == "put":
            previous = self._items.get(key)
            self._items[key] = kv
            change = MirrorChange("put", key, kv, previous, revision)
        else:
            change = MirrorChange("delete", key, None, self._items.pop(key, None), revision)
        self._version += 1
        self._revision = max(self._revision, revision)
        self._publish(change)
        self._changed.unpark_all()

    def _publish(self, change: MirrorChange) -> None:
        max_backlog = self._max_backlog
        for feed in self._feeds:
            feed._push(change, max_backlog)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def __repr__(self) -> str:
        state = "failed" if self._error else "closed" if self._closed else "following"
        return (
            f"<Mirror prefix={self.prefix!r} keys={len(self._items)} "
            f"revision={self._revision} {state}>"
        )


class MirrorMixin(KVMixin, WatchMixin):
    """``mirror()``: a local copy of a prefix, kept current in the client's nursery."""

    @contextlib.asynccontextmanager
    async def mirror(
        self,
        prefix: KeyLike,
        *,
        page_size: int = 1000,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        timeout: float | None = None,
    ) -> AsyncIterator[Mirror]:
        """Keep a local copy of every key under ``prefix`` for the block (see ``Mirror``).

        Entering lists the prefix at one revision (in pages of ``page_size``) and starts a watch
        from the next revision; the block runs once the watch is in place (within ``timeout``
        seconds, else ``DeadlineExceededError``). ``max_backlog`` bounds the unread events of
        the watch and of each change iterator. Leaving the block stops the watch; if the mirror
        failed meanwhile and the body did not, its error is raised then.
        """
        from puregrpc_etcd.lock import within

        key = to_bytes(prefix, "prefix")
        size = _kv_requests.check_int(page_size, "page_size")
        backlog = _kv_requests.check_int(max_backlog, "max_backlog")
        if size < 1 or backlog < 1:
            raise ValueError("page_size and max_backlog must be >= 1")
        check_timeout(timeout)
        mirror = Mirror(self, key, size, backlog)
        scope: trio.CancelScope = await within(
            timeout,
            f"the mirror of {key!r} was not in place in {timeout} s",
            self._caller.nursery.start(mirror._follow),
        )
        try:
            yield mirror
        finally:
            scope.cancel()
            with trio.CancelScope(shield=True):
                await mirror._stopped.wait()
        if mirror._error is not None:
            raise mirror._error
