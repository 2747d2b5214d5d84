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
watch id (etcd >= 3.4 honours client-chosen ids; id 0 would ask the server to choose). The server
answers creates in the order they were sent, so a created reply belongs to the oldest create not
answered yet, whatever id it carries, as Go's clientv3 matches them: since etcd 3.4.22 and 3.5.6 a
refused create (permission denied, invalid or stale token; on every version an empty range) comes
back ``created, canceled`` with watch id -1, not the id asked for. Responses for ids that are no
longer attached (cancelled by us, or from before a pause) are dropped: the watcher re-requests that
history from its cursor, so nothing is lost and nothing is repeated. Fragments of one response are
merged before anything is delivered, so a half-received batch never moves a cursor; what the
fragments of a stream hold together is bounded (``max_fragment_bytes``). A progress reply with
watch id -1 (neither created nor canceled) concerns every watcher already created on the stream.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, Generic, List, Sequence, TypeVar

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
REFUSED = "refused"  # a create the server refused (answered created and canceled)
OVERSIZED = "oversized"  # a reply whose fragments went over the router's bound

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

    __slots__ = (
        "cancel_reason",
        "compact_revision",
        "events",
        "kind",
        "revision",
        "target",
        "watch_id",
    )

    target: T
    kind: str  # CREATED, EVENTS, PROGRESS, PROGRESS_ALL, CANCELED, REFUSED or OVERSIZED
    revision: int  # the reply's header revision
    events: Sequence[kv_pb2.Event]
    compact_revision: int
    cancel_reason: str
    #: The id the reply carries (for CREATED: the id the server holds the watcher under).
    watch_id: int


class Router(Generic[T]):
    """Matches one Watch stream's replies to the watchers attached to it.

    ``max_fragment_bytes`` bounds the serialized size of the fragments held, all watchers
    together, until their last one arrives; a reply that would go over it is dropped and its
    watcher gets an ``OVERSIZED`` delivery (the hub cancels it).
    """

    def __init__(self, max_fragment_bytes: int = 2**31 - 1) -> None:
        self._next_id = 1
        self._targets: Dict[int, T] = {}
        self._created: Dict[int, T] = {}
        # The ids of the creates sent and not answered yet, in the order they were sent.
        self._creating: Deque[int] = deque()
        self._fragments: Dict[int, List[kv_pb2.Event]] = {}
        self._fragment_sizes: Dict[int, int] = {}
        self._fragment_bytes = 0
        self._max_fragment_bytes = max_fragment_bytes

    def attach(self, target: T) -> int:
        """Register ``target`` under a fresh watch id: send its create request next, with it."""
        watch_id = self._next_id
        self._next_id += 1
        self._targets[watch_id] = target
        self._creating.append(watch_id)
        return watch_id

    def detach(self, watch_id: int) -> bool:
        """Forget ``watch_id``; True when the server may still hold it (send a cancel).

        A create still unanswered keeps its place in the queue: its reply is dropped."""
        self._drop_fragments(watch_id)
        self._created.pop(watch_id, None)
        return self._targets.pop(watch_id, None) is not None

    def is_created(self, watch_id: int) -> bool:
        return watch_id in self._created

    @property
    def attached(self) -> int:
        """How many watchers the stream carries (created or still being created)."""
        return len(self._targets)

    @property
    def creating(self) -> int:
        """How many creates wait for their answer."""
        return len(self._creating)

    def receive(self, response: rpc_pb2.WatchResponse) -> List[Delivery[T]]:
        """The deliveries one reply makes: none, one, or (for a progress broadcast) many."""
        watch_id = response.watch_id
        revision = response.header.revision
        if response.created:
            return self._answer_create(response)
        if watch_id == BROADCAST_ID and not response.canceled:
            return [
                Delivery(target, PROGRESS_ALL, revision, (), 0, "", watch_id)
                for target in self._created.values()
            ]
        target = self._targets.get(watch_id)
        if target is None:
            return []
        if response.fragment:
            return self._hold_fragment(watch_id, target, response)
        events: Sequence[kv_pb2.Event] = response.events
        pending = self._drop_fragments(watch_id)
        if pending is not None:
            pending.extend(events)
            events = pending
        if response.canceled:
            self.detach(watch_id)
            compact_revision = response.compact_revision
            reason = response.cancel_reason
            return [
                Delivery(target, CANCELED, revision, events, compact_revision, reason, watch_id)
            ]
        kind = EVENTS if events else PROGRESS
        return [Delivery(target, kind, revision, events, 0, "", watch_id)]

    def _answer_create(self, response: rpc_pb2.WatchResponse) -> List[Delivery[T]]:
        if not self._creating:
            return []  # no create of ours is waiting: nothing to match it to
        requested = self._creating.popleft()
        target = self._targets.get(requested)
        if target is None:
            return []  # detached while its create was on the way (a cancel follows it)
        revision = response.header.revision
        if response.canceled:
            self.detach(requested)
            compact_revision = response.compact_revision
            reason = response.cancel_reason
            return [
                Delivery(target, REFUSED, revision, (), compact_revision, reason, response.watch_id)
            ]
        watch_id = response.watch_id
        if watch_id != requested:  # a server that chose its own id: follow it
            del self._targets[requested]
            self._targets[watch_id] = target
        self._created[watch_id] = target
        return [Delivery(target, CREATED, revision, (), 0, "", watch_id)]

    def _hold_fragment(
        self, watch_id: int, target: T, response: rpc_pb2.WatchResponse
    ) -> List[Delivery[T]]:
        size = response.ByteSize()
        if self._fragment_bytes + size > self._max_fragment_bytes:
            self._drop_fragments(watch_id)
            revision = response.header.revision
            return [Delivery(target, OVERSIZED, revision, (), 0, "", watch_id)]
        self._fragments.setdefault(watch_id, []).extend(response.events)
        self._fragment_sizes[watch_id] = self._fragment_sizes.get(watch_id, 0) + size
        self._fragment_bytes += size
        return []

    def _drop_fragments(self, watch_id: int) -> List[kv_pb2.Event] | None:
        self._fragment_bytes -= self._fragment_sizes.pop(watch_id, 0)
        return self._fragments.pop(watch_id, None)


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
