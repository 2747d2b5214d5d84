"""python-etcd3's watches: ``Watcher.add_callback``/``cancel`` and ``WatchResponse``.

Each watch is a watch of the blocking client (``puregrpc_etcd.sync``), read by a daemon thread
that hands its events to the callback as ``WatchResponse`` objects. Unlike python-etcd3's, a
watch here survives a lost connection: the engine resumes it from the next revision on any
working endpoint, with no event lost or repeated, and the callback never sees the outage.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any, Callable, Iterable, Iterator, Optional

from puregrpc_etcd import errors
from puregrpc_etcd._pending import ClientClosedError
from puregrpc_etcd._proto import rpc_pb2

from . import events, exceptions
from ._native import python_etcd3_error
from ._results import event_pb

__all__ = ["Watch", "WatchResponse", "Watcher"]

_log = logging.getLogger(__name__)

Callback = Callable[[Any], object]

# WatchCreateRequest.FilterType values.
_NOPUT = 0
_NODELETE = 1


class WatchResponse:
    """What a watch callback gets: ``header`` and ``events`` (``PutEvent``/``DeleteEvent``).

    ``header.revision`` is the revision the watch has reached; the other header fields are 0
    (the engine merges the server's responses, so there is no single one to copy).
    """

    def __init__(self, header: rpc_pb2.ResponseHeader, events: list[events.Event]) -> None:
        self.header = header
        self.events = events


class Watch:
    """python-etcd3's ``Watch`` record: a ``watch_id`` that ``cancel()`` cancels, and its
    ``iterator`` (an attribute: python-etcd3's method of that name is shadowed by it)."""

    def __init__(self, watch_id: int, iterator: Any = None, etcd_client: Any = None) -> None:
        self.watch_id = watch_id
        self.etcd_client = etcd_client
        self.iterator = iterator

    def cancel(self) -> None:
        self.etcd_client.cancel_watch(self.watch_id)


class _Running:
    """One watch: the sync watch context, and the thread that feeds its callback."""

    def __init__(self, context: Any, watcher: Any, callback: Callback) -> None:
        self.context = context
        self.watcher = watcher
        self.callback = callback
        self.cancelled = threading.Event()
        self.closed = False
        self.client_closed = False  # ended by closing the client, not by cancel()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _batches(self) -> Iterator[list[Any]]:
        # One batch is what the engine has received by the time its first event is read:
        # python-etcd3 hands over one server response at a time.
        events_iter = iter(self.watcher)
        for event in events_iter:
            batch = [event]
            # Received already: taking them does not wait (a cancel meanwhile ends them).
            batch.extend(itertools.islice(events_iter, self.watcher.pending))
            yield batch

    def _run(self) -> None:
        try:
            for batch in self._batches():
                if self.cancelled.is_set():
                    break
                revision = max(self.watcher.revision, batch[-1].kv.mod_revision)
                response = WatchResponse(
                    rpc_pb2.ResponseHeader(revision=revision),
                    [events.new_event(event_pb(e)) for e in batch],
                )
                _safe_callback(self.callback, response)
        except errors.EtcdError as exc:
            if not self.cancelled.is_set():
                _safe_callback(self.callback, exceptions.translate(exc))
                return
        finally:
            self.close()
        if self.client_closed:
            # As python-etcd3's closed channel fails its watch stream: the callback hears of
            # it (and the iterators of ``watch()`` end, raising it, instead of waiting for ever).
            _safe_callback(self.callback, ClientClosedError("the client is closed"))

    def close(self) -> None:
        self.cancelled.set()
        with self.lock:
            if self.closed:
                return
            self.closed = True
        try:
            self.context.__exit__(None, None, None)
        except errors.EtcdError:
            pass  # the client is closed already: so is the watch


class _Failed:
    """A watch whose creation failed in a way python-etcd3 reports through the callback."""

    def __init__(self, error: BaseException, callback: Callback) -> None:
        self.thread = threading.Thread(target=_safe_callback, args=(callback, error), daemon=True)

    client_closed = False  # (nothing runs to tell the callback)

    def close(self) -> None:
        pass


class Watcher:
    """The watches of one client (``client.watcher``)."""

    def __init__(self, etcd_client: Any, timeout: Optional[float] = None) -> None:
        self._client = etcd_client
        self.timeout = timeout
        self._lock = threading.Lock()
        self._watches: dict[int, _Running | _Failed] = {}
        self._closing: dict[int, _Running | _Failed] = {}  # those close() ends
        self._ids = itertools.count(1)

    def add_callback(  # noqa: PLR0917 - python-etcd3's signature
        self,
        key: Any,
        callback: Callback,
        range_end: Any = None,
        start_revision: Optional[int] = None,
        progress_notify: bool = False,
        filters: Optional[Iterable[int]] = None,
        prev_kv: bool = False,
    ) -> int:
        """Watch ``key`` (or ``[key, range_end)``) and call ``callback(WatchResponse)`` from a
        thread for each batch of events, or ``callback(exception)`` once if the watch fails.
        Returns the watch id for ``cancel``. Raises ``ConnectionFailedError`` when no member
        can be reached (``NoServerAvailableError`` with ``failover=True``), ``WatchTimedOut``
        when the watch is not created in time (one read to check the member, then the watch:
        each within the client's timeout)."""
        self._check_reachable(key)
        filters = set(filters or ())
        context = self._client._native.watch(
            key,
            range_end=range_end,
            start_revision=start_revision or 0,
            progress_notify=bool(progress_notify),
            prev_kv=bool(prev_kv),
            no_put=_NOPUT in filters,
            no_delete=_NODELETE in filters,
            timeout=self.timeout,
        )
        watch: _Running | _Failed
        try:
            watch = _Running(context, context.__enter__(), callback)
        except errors.CompactedError as exc:
            # python-etcd3 creates the watch, then reports the compaction to the callback.
            watch = _Failed(exceptions.translate(exc), callback)
        except errors.DeadlineExceededError as exc:
            raise exceptions.WatchTimedOut() from exc
        with self._lock:
            watch_id = next(self._ids)
            self._watches[watch_id] = watch
        watch.thread.start()
        return watch_id

    def _check_reachable(self, key: Any) -> None:
        """Fail as python-etcd3 does when no member can be reached: ``ConnectionFailedError``
        at once. The engine's watch would wait for a connection instead (it is built to resume
        watches after an outage), until the timeout or, without one, for ever. So while the
        client has no Watch stream open, one serializable read of ``key`` (answered by the
        member itself, no raft round) tells first; other failures are the watch's to report."""
        native = self._client._native
        hub = native._target._caller.watch_hub
        if hub is not None and hub.attached:
            return  # a stream is open: the member is reachable
        try:
            native.get(key, serializable=True, count_only=True)
        except errors.UnavailableError as exc:
            raise python_etcd3_error(exc, self._client) from exc
        except errors.DeadlineExceededError as exc:
            raise exceptions.WatchTimedOut() from exc
        except errors.EtcdError:
            pass

    def cancel(self, watch_id: int) -> None:
        """Stop the watch ``watch_id``; its callback is not called after this returns."""
        with self._lock:
            watch = self._watches.pop(watch_id, None)
            if watch is None:  # the client is closing it: no ClientClosedError for it now
                watch = self._closing.get(watch_id)
                if watch is not None:
                    watch.client_closed = False
        if watch is not None:
            watch.close()

    def close(self) -> None:
        """End every watch (the client closes): each callback then gets a
        ``ClientClosedError``, as python-etcd3's get the error of the closed channel."""
        with self._lock:
            self._closing, self._watches = self._watches, {}
            watches = list(self._closing.values())
            for watch in watches:  # set here, under the lock a racing cancel() takes
                watch.client_closed = True
        for watch in watches:
            watch.close()


def _safe_callback(callback: Callback, response_or_err: Any) -> None:
    try:
        callback(response_or_err)
    except Exception:
        _log.exception("Watch callback failed")
