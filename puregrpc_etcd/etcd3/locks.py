"""python-etcd3's ``Lock``, with its key layout and algorithm, so that processes on
python-etcd3 and on this module exclude each other.

The lock is the key ``/locks/<name>``: taking it is a transaction that puts a random owner id
there, under a lease of ``ttl`` seconds, if the key does not exist (create revision 0); waiting
is a watch for its deletion. It is not etcd's Go ``concurrency.Mutex`` (``etcdctl lock``): for
that, use the native client's ``lock()``.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Optional

from puregrpc_etcd import errors

from . import events, exceptions

if TYPE_CHECKING:
    from types import TracebackType

    from .client import MultiEndpointEtcd3Client
    from .leases import Lease

__all__ = ["Lock"]


class Lock:
    """A distributed lock: ``with client.lock("name", ttl=20) as lock: ...``.

    ``ttl`` bounds how long it stays held by a process that dies: nothing refreshes it by
    itself; call ``refresh()`` for longer work.
    """

    lock_prefix = "/locks/"

    def __init__(
        self, name: str, ttl: int = 60, etcd_client: Optional[MultiEndpointEtcd3Client] = None
    ) -> None:
        self.name = name
        self.ttl = ttl
        if etcd_client is not None:
            self.etcd_client = etcd_client
        self.key = self.lock_prefix + self.name
        self.lease: Optional[Lease] = None
        self.revision = 0
        self._seen_at = 0  # the store's revision when the last try found the lock held
        # Stored as bytes: the value read back compares without decoding.
        self.uuid = uuid.uuid1().bytes

    def acquire(self, timeout: Optional[float] = 10) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds (None: for ever; 0: not at all).
        True if taken."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._try_acquire():
                return True
            remaining: Optional[float] = None
            if deadline is not None:
                remaining = max(deadline - time.monotonic(), 0)
                if remaining == 0:
                    return False
            self._wait_delete_event(remaining)

    def _try_acquire(self) -> bool:
        client = self.etcd_client
        lease = client.lease(self.ttl)
        success, responses = client.transaction(
            compare=[client.transactions.create(self.key) == 0],
            success=[client.transactions.put(self.key, self.uuid, lease=lease)],
            failure=[client.transactions.get(self.key)],
        )
        if success is True:
            self.lease = lease
            self.revision = responses[0].response_put.header.revision
            return True
        # Held elsewhere: wait from the holder's revision on. The lease granted for this try
        # is given back now (python-etcd3 leaves it to expire).
        taken = responses[0]
        self.revision = taken[0][1].mod_revision if taken else 0
        self._seen_at = taken[0][1].response_header.revision if taken else 0
        self.lease = None
        try:
            client.revoke_lease(lease.id)
        except (errors.EtcdError, exceptions.Etcd3Exception):
            pass  # it expires after ttl anyway
        return False

    def _wait_delete_event(self, timeout: Optional[float]) -> None:
        # python-etcd3 watches from the holder's revision + 1 and raises if that history has
        # been compacted meanwhile. Here the watch then starts again from the revision at which
        # the failed transaction saw the key held: no delete that matters can come before it.
        for start in (self.revision + 1, self._seen_at + 1):
            try:
                self._watch_for_delete(start, timeout)
                return
            except exceptions.RevisionCompactedError:  # noqa: PERF203 - two tries at most
                continue

    def _watch_for_delete(self, start_revision: int, timeout: Optional[float]) -> None:
        try:
            event_iter, cancel = self.etcd_client.watch(self.key, start_revision=start_revision)
        except exceptions.WatchTimedOut:
            return
        timer: Optional[threading.Timer] = None
        if timeout is not None:
            timer = threading.Timer(timeout, cancel)
            timer.daemon = True
            timer.start()
        try:
            for event in event_iter:
                if isinstance(event, events.DeleteEvent):
                    break
        finally:
            if timer is not None:
                timer.cancel()
            cancel()

    def release(self) -> bool:
        """Release the lock if this ``Lock`` holds it; True if it did."""
        client = self.etcd_client
        success, _ = client.transaction(
            compare=[client.transactions.value(self.key) == self.uuid],
            success=[client.transactions.delete(self.key)],
            failure=[],
        )
        return success

    def refresh(self) -> list[Any]:
        """Renew the lock's lease (restart its ``ttl``)."""
        if self.lease is not None:
            return self.lease.refresh()
        raise ValueError("No lease associated with this lock - have you acquired the lock yet?")

    def is_acquired(self) -> bool:
        """True if this ``Lock`` holds the lock now."""
        owner, _ = self.etcd_client.get(self.key)
        return owner is not None and owner == self.uuid

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(
        self,
        exception_type: Optional[type[BaseException]],
        exception_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.release()
