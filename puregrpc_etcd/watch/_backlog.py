"""One watcher as the hub sees it: where it resumes, the events its consumer has not read yet, and
what happens when a slow consumer lets them pile up beyond a bound (raise, or pause and resume).
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Optional, Sequence, Union

import trio

from puregrpc_etcd._proto import kv_pb2
from puregrpc_etcd.errors import WatchOverflowError
from puregrpc_etcd.watch._state import Cursor, WatchSpec

#: Unread events a watcher may hold for a slow consumer (``watch(max_backlog=)``).
DEFAULT_MAX_BACKLOG = 10_000
#: Bytes of keys and values a watcher may hold for a slow consumer (``watch(max_backlog_bytes=)``).
DEFAULT_MAX_BACKLOG_BYTES = 64 * 1024 * 1024

OVERFLOW_MODES = ("raise", "pause")

BacklogItem = Union[kv_pb2.Event, int]  # an event, or the revision of a progress notification


class BacklogLimits:
    """How much a watcher may buffer for its consumer, and what overflowing does."""

    __slots__ = ("max_bytes", "max_events", "on_overflow")

    def __init__(self, max_events: int, max_bytes: int, on_overflow: str) -> None:
        for name, value in (("max_backlog", max_events), ("max_backlog_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int")
            if value < 1:
                raise ValueError(f"{name} must be >= 1")
        if on_overflow not in OVERFLOW_MODES:
            raise ValueError(f"on_overflow must be 'raise' or 'pause', not {on_overflow!r}")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.on_overflow = on_overflow

    def exceeded(self, events: int, size: int) -> Optional[str]:
        """The name of the bound that ``events`` unread events of ``size`` bytes go over."""
        if events > self.max_events:
            return "max_backlog"
        if size > self.max_bytes:
            return "max_backlog_bytes"
        return None

    def resumable(self, events: int, size: int) -> bool:
        """Whether a paused watcher has been read down far enough to be re-created."""
        return events <= self.max_events // 2 and size <= self.max_bytes // 2


class Subscription:
    """One watcher: what it asks for, where it resumes, and what its consumer has not read yet.

    ``backlog`` holds received events (and, between them, progress revisions) in order;
    ``pending_events`` and ``pending_bytes`` (keys, values and previous ones) measure it. A
    delivery that leaves it over a bound while the consumer was already behind (it had unread
    events before) is an overflow; the hub then cancels the watcher on the server and either
    fails it with ``WatchOverflowError`` after the buffered events, or pauses it and re-creates
    it from the cursor once the consumer has read the backlog down to half of both bounds.
    A consumer that had read everything is not slow, however many events one revision holds.
    """

    def __init__(
        self, spec: WatchSpec, start_revision: int, limits: BacklogLimits, key: bytes = b""
    ) -> None:
        self.spec = spec
        #: The watched key as the caller gave it (without the client's namespace).
        self.key = key
        self.cursor = Cursor(start_revision)
        self.limits = limits
        self.backlog: Deque[BacklogItem] = deque()
        self.pending_events = 0
        self.pending_bytes = 0
        # The size of each unread event, in order: measured once, on arrival.
        self._sizes: Deque[int] = deque()
        #: Every event up to this revision has been handed to the consumer.
        self.delivered_revision = 0
        self.error: Optional[BaseException] = None
        self.closed = False
        self.paused = False
        self.pauses = 0
        #: Whether a refusal of this watcher already led to an access check (see WatchHub).
        self.access_checked = False
        self.watch_id: Optional[int] = None
        self.ready = trio.Event()
        self._changed = trio.lowlevel.ParkingLot()

    @property
    def active(self) -> bool:
        """Whether it belongs on the stream (not failed, closed or paused)."""
        return self.error is None and not self.closed and not self.paused

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.watch_id = None
        self.ready.set()
        self._changed.unpark_all()

    def close(self) -> None:
        self.closed = True
        self.watch_id = None
        self.backlog.clear()
        self._sizes.clear()
        self.pending_events = self.pending_bytes = 0
        self._changed.unpark_all()

    async def wait_changed(self) -> None:
        await self._changed.park()

    def on_created(self, revision: int) -> None:
        self.access_checked = False
        self.cursor.on_created(revision)
        if not self.ready.is_set():
            self.delivered_revision = self.cursor.revision
            self.ready.set()

    def on_events(self, events: Sequence[kv_pb2.Event]) -> Optional[str]:
        """Buffer received events; return the bound they overflow (see the class), if any."""
        behind = self.pending_events > 0
        self.cursor.on_events(events)
        self.backlog.extend(events)
        self.pending_events += len(events)
        with_prev = self.spec.prev_kv
        sizes = [_size(event, with_prev) for event in events]
        self._sizes.extend(sizes)
        self.pending_bytes += sum(sizes)
        self._changed.unpark_all()
        if not behind:
            return None
        return self.limits.exceeded(self.pending_events, self.pending_bytes)

    def overflow_error(self, bound: str) -> WatchOverflowError:
        """The error of an overflow of ``bound``: every received event will have been read."""
        limit = self.limits.max_events if bound == "max_backlog" else self.limits.max_bytes
        return WatchOverflowError(self.key, bound, limit, self.cursor.revision)

    def on_progress(self, revision: int, *, resumable: bool) -> None:
        """A progress notification; only one ``resumable`` from moves the cursor (see
        ``watch._state``), every one advances the consumer's revision in order."""
        if resumable:
            self.cursor.on_progress(revision)
        backlog = self.backlog
        if not backlog:
            self.delivered_revision = max(self.delivered_revision, revision)
        elif isinstance(backlog[-1], int):
            backlog[-1] = revision
        else:
            backlog.append(revision)

    def pop(self) -> Optional[kv_pb2.Event]:
        """The next unread event (None when only progress was pending); the backlog is not empty."""
        item = self.backlog.popleft()
        if isinstance(item, int):
            self.delivered_revision = max(self.delivered_revision, item)
            return None
        self.pending_events -= 1
        self.pending_bytes -= self._sizes.popleft()
        revision = item.kv.mod_revision
        following = self.backlog[0] if self.backlog else None
        # One revision can hold several events (a txn); it is delivered when its last one is.
        if isinstance(following, kv_pb2.Event) and following.kv.mod_revision == revision:
            revision -= 1
        self.delivered_revision = max(self.delivered_revision, revision)
        return item


def _size(event: kv_pb2.Event, with_prev: bool) -> int:
    kv = event.kv
    size = len(kv.key) + len(kv.value)
    if with_prev:
        prev = event.prev_kv
        size += len(prev.key) + len(prev.value)
    return size
