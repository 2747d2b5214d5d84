"""Watch: change feeds of keys and ranges, multiplexed on one stream per client and resumed after
every break from the last received revision, so that no event is lost, repeated or reordered.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Literal,
    Optional,
)

import trio

from puregrpc_etcd._client_contract import ClientBase
from puregrpc_etcd._keys import ALL_KEYS, KeyLike
from puregrpc_etcd._proto import kv_pb2
from puregrpc_etcd.errors import DeadlineExceededError, EtcdError, WatchOverflowError
from puregrpc_etcd.grpc import StatusCode
from puregrpc_etcd.types import KeyValue, key_value
from puregrpc_etcd.watch._backlog import (
    DEFAULT_MAX_BACKLOG,
    DEFAULT_MAX_BACKLOG_BYTES,
    BacklogLimits,
    Subscription,
)
from puregrpc_etcd.watch._hub import WatchHub
from puregrpc_etcd.watch._state import WatchSpec

if TYPE_CHECKING:
    from types import TracebackType

EventType = Literal["put", "delete"]
OverflowMode = Literal["raise", "pause"]

__all__ = [
    "DEFAULT_MAX_BACKLOG",
    "DEFAULT_MAX_BACKLOG_BYTES",
    "Event",
    "WatchContext",
    "WatchMixin",
    "WatchOverflowError",
    "Watcher",
]

EventHandler = Callable[["Event"], Optional[Awaitable[None]]]


@dataclass(frozen=True)
class Event:
    """One change: ``type`` ("put" or "delete"), the key as it is after the change (``kv``; for a
    delete only ``key`` and ``mod_revision`` are set) and, when the watch asked for ``prev_kv``,
    the key as it was before (None if it did not exist or was not asked for)."""

    __slots__ = ("kv", "prev_kv", "type")

    type: EventType
    kv: KeyValue
    prev_kv: Optional[KeyValue]

    @property
    def is_create(self) -> bool:
        """A put that created the key (its first version since it was last deleted)."""
        return self.type == "put" and self.kv.version == 1

    @property
    def is_modify(self) -> bool:
        """A put to a key that already existed."""
        return self.type == "put" and self.kv.version > 1

    @property
    def is_delete(self) -> bool:
        return self.type == "delete"

    @property
    def revision(self) -> int:
        """The revision of the change (``kv.mod_revision``)."""
        return self.kv.mod_revision


def _event(pb: kv_pb2.Event, namespace: bytes) -> Event:
    prev = key_value(pb.prev_kv, namespace) if pb.HasField("prev_kv") else None
    kind: EventType = "delete" if pb.type == kv_pb2.Event.DELETE else "put"
    return Event(kind, key_value(pb.kv, namespace), prev)


def _not_within(what: str, seconds: Optional[float]) -> DeadlineExceededError:
    return DeadlineExceededError(StatusCode.DEADLINE_EXCEEDED, f"{what} within {seconds} s")


class Watcher:
    """An async iterator of the ``Event``s of one watch, in revision order.

    ``revision`` is the revision up to which every event has been handed out (advanced also by
    progress notifications); after a connection break the watch resumes from the last *received*
    revision + 1 on whichever endpoint works, so the iterator sees neither a gap nor a repeat.
    Iteration raises ``CompactedError`` (with ``compact_revision``) if the history it needs was
    compacted, another ``EtcdError`` if the server refused the watch, and stops when the ``async
    with`` block that made it has been left.

    Backpressure: a consumer slower than the server never holds up the client's other watchers,
    and what it has not read is bounded by ``max_backlog`` events and ``max_backlog_bytes`` bytes
    of keys and values (previous ones included). When a batch of events arrives while the
    consumer is still behind and takes it over a bound (one revision larger than a bound, read
    promptly, is let through), this watcher is cancelled on the server, and then:

    - ``on_overflow="raise"`` (the default): the iterator hands out every event it had received,
      then raises ``WatchOverflowError``, whose ``revision`` says where to watch again from.
    - ``on_overflow="pause"``: the watcher is re-created from where it stopped once the consumer
      has read its backlog down to half of both bounds. Nothing is skipped and nothing fails; the
      cost is a re-read of history from the server (if that history is compacted meanwhile, the
      iterator raises ``CompactedError`` once the buffered events have been read).
    """

    __slots__ = ("_hub", "_namespace", "_subscription")

    def __init__(self, hub: WatchHub, subscription: Subscription, namespace: bytes) -> None:
        self._hub = hub
        self._subscription = subscription
        self._namespace = namespace

    @property
    def revision(self) -> int:
        """Every event up to this revision has been handed out by the iterator."""
        return self._subscription.delivered_revision

    @property
    def pending(self) -> int:
        """Events received and not read yet."""
        return self._subscription.pending_events

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> Event:
        subscription = self._subscription
        while True:
            if subscription.backlog:
                pb = subscription.pop()
                self._hub.consumed(subscription)
                if pb is not None:
                    return _event(pb, self._namespace)
                continue
            if subscription.error is not None:
                raise subscription.error
            if subscription.closed:
                raise StopAsyncIteration
            await subscription.wait_changed()

    async def request_progress(self, *, timeout: Optional[float] = None) -> int:
        """Ask the server where this client's watchers are, and return ``revision`` after it.

        ``timeout`` (else the client's default timeout) bounds the wait for the answer, which
        waits for a working connection (``DeadlineExceededError``).

        The notification (etcd's ``WatchProgressRequest``) concerns every watcher of the client;
        each one's ``revision`` advances once its consumer has read the events before it. etcd
        before 3.5.8 may answer ahead of events it has not sent yet, so a watcher does not resume
        from such a notification after a break, only from events it received and from its own
        ``progress_notify`` notifications (which are ordered with its events).
        """
        subscription = self._subscription
        if subscription.error is None and not subscription.closed:
            limit = self._hub.default_timeout if timeout is None else timeout
            with trio.move_on_after(math.inf if limit is None else limit) as scope:
                await self._hub.request_progress()
            if scope.cancelled_caught:
                raise _not_within("no progress notification came", limit)
        if subscription.error is not None:
            raise subscription.error
        return subscription.delivered_revision

    def __repr__(self) -> str:
        spec = self._subscription.spec
        return f"<Watcher key={spec.key!r} range_end={spec.range_end!r} revision={self.revision}>"


class WatchContext:
    """``async with client.watch(...) as watcher``: creates the watch on entry (it sees every
    change after that point, or from ``start_revision``) and cancels it on the server on exit."""

    __slots__ = ("_client", "_entered", "_namespace", "_subscription", "_timeout")

    def __init__(
        self, client: WatchMixin, subscription: Subscription, timeout: Optional[float]
    ) -> None:
        self._client = client
        self._subscription = subscription
        self._namespace = client._keyspace.prefix
        self._timeout = timeout
        self._entered = False

    async def __aenter__(self) -> Watcher:
        if self._entered:
            raise RuntimeError("a watch() context can be entered only once")
        self._entered = True
        hub = self._client._watch_hub_instance()
        subscription = self._subscription
        try:
            hub.add(subscription)
        except RuntimeError as exc:
            raise EtcdError("the client is closed") from exc
        try:
            with trio.move_on_after(math.inf if self._timeout is None else self._timeout):
                await subscription.ready.wait()
        except BaseException:
            hub.remove(subscription)
            raise
        if not subscription.ready.is_set():
            hub.remove(subscription)
            raise _not_within("the watch was not created", self._timeout)
        if subscription.error is not None:
            hub.remove(subscription)
            raise subscription.error
        return Watcher(hub, subscription, self._namespace)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._client._watch_hub_instance().remove(self._subscription)

    async def run(
        self, handler: EventHandler, *, task_status: trio.TaskStatus[trio.CancelScope]
    ) -> None:
        """Call ``handler(event)`` for each event in order (awaiting it if it returns an
        awaitable) until cancelled; meant for ``nursery.start`` (see ``watch_callback``)."""
        with trio.CancelScope() as scope:
            async with self as watcher:
                task_status.started(scope)
                async for event in watcher:
                    result = handler(event)
                    if inspect.isawaitable(result):
                        await result


class WatchMixin(ClientBase):
    """``watch()`` and ``watch_callback()``; every watcher of a client shares one Watch stream."""

    def _watch_hub_instance(self) -> WatchHub:
        caller = self._caller
        hub = caller.watch_hub
        if hub is None:
            hub = caller.watch_hub = WatchHub(caller)
        return hub

    def watch(
        self,
        key: KeyLike,
        *,
        prefix: bool = False,
        from_key: bool = False,
        range_end: Optional[KeyLike] = None,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
        no_put: bool = False,
        no_delete: bool = False,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        max_backlog_bytes: int = DEFAULT_MAX_BACKLOG_BYTES,
        on_overflow: OverflowMode = "raise",
        timeout: Optional[float] = None,
    ) -> WatchContext:
        """Watch a key, a prefix (``prefix=True``), every key from ``key`` (``from_key=True``) or
        ``[key, range_end)``; use as ``async with client.watch(...) as watcher: async for ...``.

        ``start_revision`` 0 means changes after the watch is created; a past revision replays
        history from there. ``prev_kv`` adds each key's previous value to its events,
        ``progress_notify`` asks the server for periodic progress notifications (they advance
        ``Watcher.revision``), ``no_put``/``no_delete`` filter events out on the server.
        ``max_backlog`` (events) and ``max_backlog_bytes`` (keys and values) bound what is kept
        for a slow consumer; going over either one raises ``WatchOverflowError`` after the
        buffered events, or with ``on_overflow="pause"`` pauses the watch on the server until
        the consumer catches up (see ``Watcher``).
        An empty range (``range_end`` not after ``key``) is a ``ValueError``; a watch the server
        refuses raises its error on entry (``PermissionDeniedError`` for a key the user may not
        read), and only there: the client's other watchers carry on.
        ``timeout`` (else the client's default timeout) bounds the wait for the server to create
        the watch on entry (``DeadlineExceededError``); once created, a watch has no deadline and
        rides out outages, resuming as soon as an endpoint answers.
        """
        start, end = self._keyspace.range(
            key, prefix=prefix, from_key=from_key, range_end=range_end
        )
        if end not in (b"", ALL_KEYS) and end <= start:
            # etcd refuses such a watch (an empty range); say so before any I/O.
            raise ValueError(f"range_end {end!r} must sort after the key {start!r}")
        if isinstance(start_revision, bool) or not isinstance(start_revision, int):
            raise TypeError("start_revision must be an int")
        if start_revision < 0:
            raise ValueError("start_revision must be >= 0")
        limits = BacklogLimits(max_backlog, max_backlog_bytes, on_overflow)
        spec = WatchSpec(
            key=start,
            range_end=end,
            prev_kv=bool(prev_kv),
            progress_notify=bool(progress_notify),
            no_put=bool(no_put),
            no_delete=bool(no_delete),
        )
        if timeout is None:
            timeout = self._caller.timeout
        subscription = Subscription(spec, start_revision, limits, key=self._keyspace.unkey(start))
        return WatchContext(self, subscription, timeout)

    async def watch_callback(
        self, nursery: trio.Nursery, key: KeyLike, handler: EventHandler, **options: Any
    ) -> trio.CancelScope:
        """Run ``handler(event)`` for every event of ``watch(key, **options)`` in a task of
        ``nursery`` (the caller's), one at a time and in order, until the returned cancel scope
        (or the nursery) is cancelled. It returns once the watch is created. Errors, the
        handler's included, propagate into ``nursery`` as a task failure would."""
        context = self.watch(key, **options)
        scope: trio.CancelScope = await nursery.start(context.run, handler)
        return scope
