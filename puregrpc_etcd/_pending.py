"""Outcomes crossing from the portal's trio thread to the threads and asyncio loops that wait.

``Pending`` is one outcome, set once on the trio side and waited for by blocking (``wait``: a
socket pair lent to the waiting thread, ``_Wakeup``) or by awaiting an asyncio future
(``wait_async``: a batch of outcomes for one loop costs one ``call_soon_threadsafe``,
``_Mailbox``). Also here: the errors of a closed (or forked) client, and the at-exit flag that
keeps waiting daemon threads quiet while the interpreter ends (``_portal._close_at_exit`` sets
it).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable

from puregrpc_etcd.errors import EtcdError

if TYPE_CHECKING:
    import asyncio

__all__ = ["ClientClosedError", "ForkedError", "Pending", "park_if_exiting"]


class ClientClosedError(EtcdError):
    """The client was closed before or while the call ran (``close()``, leaving its block)."""


class ForkedError(ClientClosedError):
    """A client (or a watcher, lock, lease... of one) opened before ``os.fork()`` was used in
    the child. The child does not share the parent's loop, thread or sockets: connect anew
    there (``sync.connect(...)`` / ``aio.connect(...)``)."""


#: True once the interpreter exits (``_portal._close_at_exit``).
exiting = False


def park_if_exiting() -> None:
    """At interpreter exit, a daemon thread that calls a closed client waits for the end."""
    if exiting and threading.current_thread().daemon:
        threading.Event().wait()


class Pending:
    """One outcome crossing from the trio thread to whoever waits for it.

    Set once on the trio side (``succeed``/``fail``); waited for by blocking (any thread, any
    number of waiters) or by awaiting (one asyncio future per waiter).
    """

    __slots__ = ("_callbacks", "_error", "_lock", "_value", "done")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], object]] = []
        self._value: Any = None
        self._error: BaseException | None = None
        self.done = False

    def succeed(self, value: Any) -> None:
        self._settle(value, None)

    def fail(self, error: BaseException) -> None:
        self._settle(None, error)

    def _settle(self, value: Any, error: BaseException | None) -> None:
        if exiting and isinstance(error, ClientClosedError):
            return  # see _portal._close_at_exit
        with self._lock:
            if self.done:
                return
            self._value = value
            self._error = error
            self.done = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def add_done_callback(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once done: at once if done already, else in the thread that
        settles the outcome (the portal's, usually), which must not wait in it."""
        with self._lock:
            if not self.done:
                self._callbacks.append(callback)
                return
        callback()

    def result(self) -> Any:
        """The value, or raise the error (only once ``done``)."""
        error = self._error
        if error is not None:
            raise error
        return self._value

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done (True) or ``timeout`` (False); Ctrl-C interrupts it."""
        if self.done:
            return True
        wakeup = _take_wakeup()
        try:
            with self._lock:
                if self.done:
                    return True
                self._callbacks.append(wakeup.wake)
            return wakeup.wait_for(self, timeout)
        finally:
            _give_back(wakeup)

    def wait_async(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        """An asyncio future of ``loop`` that completes with this outcome."""
        future = loop.create_future()

        def transfer() -> None:
            if not future.done():
                if self._error is not None:
                    future.set_exception(self._error)
                else:
                    future.set_result(self._value)

        with self._lock:
            if not self.done:
                self._callbacks.append(_mailbox(loop).poster(transfer))
                return future
        transfer()
        return future


class _Mailbox:
    """Outcomes on their way to one asyncio loop: a batch of them costs one
    ``call_soon_threadsafe`` (one write to the loop's self-pipe), not one each."""

    __slots__ = ("__weakref__", "_items", "_lock", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)
        self._lock = threading.Lock()
        self._items: list[Callable[[], object]] = []
        self._scheduled = False

    def poster(self, transfer: Callable[[], object]) -> Callable[[], None]:
        return lambda: self._post(transfer)

    def _post(self, transfer: Callable[[], object]) -> None:
        with self._lock:
            self._items.append(transfer)
            if self._scheduled:
                return
            self._scheduled = True
        loop = self._loop()
        try:
            if loop is not None:
                loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:
            pass  # the loop closed meanwhile: nobody waits there any more

    def _deliver(self) -> None:
        with self._lock:
            items, self._items = self._items, []
            self._scheduled = False
        for transfer in items:
            transfer()


_mailboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Mailbox] = (
    weakref.WeakKeyDictionary()
)
_mailboxes_lock = threading.Lock()


#: This process's id, renewed in a forked child (os.getpid() is a system call per call): what
#: the portal's fork check and the thread wake-ups compare with.
process_id = os.getpid()


def _after_fork_in_child() -> None:
    global _mailboxes_lock, process_id
    process_id = os.getpid()
    _idle_wakeups.clear()  # the parent's: their bytes could go to either process
    _mailboxes_lock = threading.Lock()  # another thread may have held it at the fork
    _mailboxes.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _mailbox(loop: asyncio.AbstractEventLoop) -> _Mailbox:
    mailbox = _mailboxes.get(loop)
    if mailbox is None:
        with _mailboxes_lock:
            mailbox = _mailboxes.setdefault(loop, _Mailbox(loop))
    return mailbox


class _Wakeup:
    """How a thread sleeps until the trio thread wakes it: a socket pair, lent for one wait.

    Not a lock: on PyPy a lock released in one thread for another costs ~140 µs (the GIL
    hand-over), a byte through a socket ~3 µs (CPython: 4 and 3 µs). A wake-up meant for a wait
    given up (Ctrl-C, a timeout) may arrive later, in the wait of another thread the pair is lent
    to then; waits therefore re-check what they wait for.

    Lent from a pool (``_take_wakeup``), not kept per thread: there are as many pairs as
    threads ever waited at once, not one per thread that ever waited (PyPy closed an ended
    thread's pair only when its collector ran: a thread per job ran out of file descriptors).
    """

    __slots__ = ("_receive", "_send", "pid")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._receive, self._send = socket.socketpair()
        self._send.setblocking(False)  # the trio thread must never block on a wake-up

    def wake(self) -> None:
        try:
            self._send.send(b"\0")
        except OSError:
            pass  # full (wake-ups are pending anyway), or the thread has ended

    def wait_for(self, pending: Pending, timeout: float | None) -> bool:
        receive = self._receive
        if timeout is None:
            if receive.gettimeout() is not None:  # a timed wait interrupted in its clean-up
                receive.settimeout(None)
            while not pending.done:
                receive.recv(64)
            return True
        deadline = time.monotonic() + timeout
        try:
            while not pending.done:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                receive.settimeout(remaining)
                try:
                    receive.recv(64)
                except socket.timeout:
                    return pending.done
            return True
        finally:
            receive.settimeout(None)

    def close(self) -> None:
        self._receive.close()
        self._send.close()

    __del__ = close


#: The pairs no thread waits on; ``list.pop``/``append`` are atomic (no lock needed).
_idle_wakeups: list[_Wakeup] = []
#: How many idle pairs are kept: after a burst of waiting threads the rest are closed.
_IDLE_WAKEUPS_KEPT = 32


def _give_back(wakeup: _Wakeup) -> None:
    if len(_idle_wakeups) < _IDLE_WAKEUPS_KEPT:
        _idle_wakeups.append(wakeup)
    else:
        wakeup.close()


def _take_wakeup() -> _Wakeup:
    try:
        wakeup = _idle_wakeups.pop()
    except IndexError:
        return _Wakeup()
    if wakeup.pid != process_id:  # a forked child has sockets of its own
        return _Wakeup()
    return wakeup
