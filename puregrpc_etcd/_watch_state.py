"""Sans-IO watch bookkeeping: where each watcher resumes, and how one Watch stream's responses are
matched to watchers (client-chosen ids, fragments, progress broadcasts). No trio, no sockets.

Theory of operation
-------------------
A watcher outlives the streams that carry it. Its ``Cursor`` holds the revision it must resume
from (``next_revision``): the last received event's ``mod_revision + 1``, or ``header.revision + 1``
only for a response that carries no events (a created reply for a "from now" watch, or the
watcher's own progress notification). Catch-up batches are stamped with the store's *current*
revision, so taking the header after events would skip the events between the batch and the header.

A progress reply to a WatchProgressRequest (watch id -1, ``PROGRESS_ALL``) does not move cursors:
etcd before 3.5.8 sends it on a separate path, possibly ahead of events it has not sent yet (of a
watcher still catching up, or racing a write; etcd issue 15220), and a break right after it would
lose those events. It only advances the revision shown to the consumer. A watcher's own progress
notifications (``progress_notify``) travel with its events and only once it has caught up: safe.

A ``Router`` lives for one stream. Every (re)creation of a watcher on it gets a fresh, never reused
watch id (etcd >= 3.4 honours client-chosen ids; id 0 would ask the server to choose). Responses for
ids that are no longer attached (cancelled by us, or from before a pause) are dropped: the watcher
re-requests that history from its cursor, so nothing is lost and nothing is repeated. Fragments of
one response are merged before anything is delivered, so a half-received batch never moves a
cursor. A progress reply with watch id -1 concerns every watcher already created on the stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Generic, List, Sequence, TypeVar

from puregrpc_etcd import errors
from puregrpc_etcd._proto import kv_pb2, rpc_pb2
from puregrpc_etcd.grpc.status import StatusCode

T = TypeVar("T")

#: The watch id etcd puts on replies to a WatchProgressRequest: they concern every watcher.
BROADCAST_ID = -1

CREATED = "created"
EVENTS = "events"
PROGRESS = "progress"
PROGRESS_ALL = "progress-all"
CANCELED = "canceled"

# A refused create carries grpc-go's rendering of a status as its reason.
_GO_STATUS = re.compile(r"rpc error: code = (\w+) desc = (.*)", re.DOTALL)


@dataclass(frozen=True)
class WatchSpec:
    """What a watcher asks the server for; the start revision comes from its cursor."""

    __slots__ = ("key", "no_delete", "no_put", "prev_kv", "progress_notify", "range_end")

    key: bytes
    range_end: bytes
    prev_kv: bool
    progress_notify: bool
    no_put: bool
    no_delete: bool

    def create_request(self, watch_id: int, start_revision: int) -> rpc_pb2.WatchRequest:
        filters = []
        if self.no_put:
            filters.append(rpc_pb2.WatchCreateRequest.NOPUT)
        if self.no_delete:
            filters.append(rpc_pb2.WatchCreateRequest.NODELETE)
        create = rpc_pb2.WatchCreateRequest(
            key=self.key,
            range_end=self.range_end,
            start_revision=start_revision,
            progress_notify=self.progress_notify,
            filters=filters,
            prev_kv=self.prev_kv,
            watch_id=watch_id,
            fragment=True,
        )
        return rpc_pb2.WatchRequest(create_request=create)


class Cursor:
    """A watcher's position in history: the revision its next (re)creation starts from.

    ``next_revision`` 0 means "from now" and is only possible before the first created reply.
    """

    __slots__ = ("next_revision",)

    def __init__(self, start_revision: int = 0) -> None:
        if start_revision < 0:
            raise ValueError("start_revision must be >= 0")
        self.next_revision = start_revision

    @property
    def revision(self) -> int:
        """The revision up to which every event has been received (``next_revision - 1``)."""
        return max(self.next_revision - 1, 0)

    def on_created(self, header_revision: int) -> None:
        # The server starts a "from now" watch at header.revision + 1 (watch.go: wsrev + 1).
        if self.next_revision == 0:
            self.next_revision = header_revision + 1

    def on_events(self, events: Sequence[kv_pb2.Event]) -> None:
        if events:
            self.next_revision = max(self.next_revision, events[-1].kv.mod_revision + 1)

    def on_progress(self, header_revision: int) -> None:
        self.next_revision = max(self.next_revision, header_revision + 1)


@dataclass(frozen=True)
class Delivery(Generic[T]):
    """One reply (fragments merged) for one watcher."""

    __slots__ = ("cancel_reason", "compact_revision", "events", "kind", "revision", "target")

    target: T
    kind: str  # CREATED, EVENTS, PROGRESS, PROGRESS_ALL or CANCELED
    revision: int  # the reply's header revision
    events: Sequence[kv_pb2.Event]
    compact_revision: int
    cancel_reason: str


class Router(Generic[T]):
    """Matches one Watch stream's replies to the watchers attached to it."""

    def __init__(self) -> None:
        self._next_id = 1
        self._targets: Dict[int, T] = {}
        self._created: Dict[int, T] = {}
        self._fragments: Dict[int, List[kv_pb2.Event]] = {}

    def attach(self, target: T) -> int:
        """Register ``target`` under a fresh watch id (send the create request with it)."""
        watch_id = self._next_id
        self._next_id += 1
        self._targets[watch_id] = target
        return watch_id

    def detach(self, watch_id: int) -> bool:
        """Forget ``watch_id``; True when the server may still hold it (send a cancel)."""
        self._fragments.pop(watch_id, None)
        self._created.pop(watch_id, None)
        return self._targets.pop(watch_id, None) is not None

    def is_created(self, watch_id: int) -> bool:
        return watch_id in self._created

    @property
    def attached(self) -> int:
        """How many watchers the stream carries (created or still being created)."""
        return len(self._targets)

    def receive(self, response: rpc_pb2.WatchResponse) -> List[Delivery[T]]:
        """The deliveries one reply makes: none, one, or (for a progress broadcast) many."""
        watch_id = response.watch_id
        revision = response.header.revision
        if watch_id == BROADCAST_ID and not (response.created or response.canceled):
            return [
                Delivery(target, PROGRESS_ALL, revision, (), 0, "")
                for target in self._created.values()
            ]
        target = self._targets.get(watch_id)
        if target is None:
            return []
        if response.fragment:
            self._fragments.setdefault(watch_id, []).extend(response.events)
            return []
        events: Sequence[kv_pb2.Event] = response.events
        pending = self._fragments.pop(watch_id, None)
        if pending is not None:
            pending.extend(events)
            events = pending
        if response.canceled:
            self.detach(watch_id)
            return [
                Delivery(
                    target,
                    CANCELED,
                    revision,
                    events,
                    response.compact_revision,
                    response.cancel_reason,
                )
            ]
        if response.created:
            self._created[watch_id] = target
            return [Delivery(target, CREATED, revision, (), 0, "")]
        kind = EVENTS if events else PROGRESS
        return [Delivery(target, kind, revision, events, 0, "")]


def cancel_error(compact_revision: int, reason: str) -> errors.EtcdError:
    """The error that ends a watcher the server cancelled: ``CompactedError`` when its history
    was compacted, else the typed error of the server's reason (permission denied, ...)."""
    if compact_revision:
        return errors.CompactedError(
            StatusCode.OUT_OF_RANGE,
            "etcdserver: mvcc: required revision has been compacted "
            f"(compact revision {compact_revision})",
            compact_revision=compact_revision,
        )
    code = StatusCode.CANCELLED
    details = reason or "the server cancelled the watch without giving a reason"
    rendered = _GO_STATUS.match(details)
    if rendered is not None:
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", rendered.group(1)).upper()
        code = StatusCode.__members__.get(name, code)
        details = rendered.group(2)
    return errors.error_class(code.name, details)(code, details)
