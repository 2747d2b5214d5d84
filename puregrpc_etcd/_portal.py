"""One trio loop in a daemon thread, driven from other threads or from an asyncio loop.

The blocking face (``sync``) and the asyncio face (``aio``) own one ``Portal`` each per
client: a thread that runs ``trio.run``, opens the trio ``Client`` there and keeps it until
closed. Everything the faces do is a call into that loop: ``submit`` starts a task for one
coroutine (a ``_tasks.Call``) and reports its outcome through a ``_pending.Pending``; ``hold``
enters an async context manager in a task of its own (``_tasks.Holder.run``) and keeps it
entered until the other side leaves its block (so cancel scopes and nurseries inside the manager
stay in one task, as trio requires). The other side waits on a ``Pending`` by blocking
(``wait``) or by awaiting an asyncio future (``Pending.wait_async``); giving up the wait
(Ctrl-C, a cancelled asyncio task) cancels the trio task, which resets its HTTP/2 stream and
leaves the connection healthy.

No protocol or etcd logic lives here or in the faces: they only move calls across.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable

import trio
from outcome import Value

from puregrpc_etcd import _pending
from puregrpc_etcd._pending import ClientClosedError, ForkedError, Pending, park_if_exiting
from puregrpc_etcd._tasks import Call, Holder

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from typing import AsyncContextManager

__all__ = ["CANCEL_WAIT", "CLOSE_WAIT", "Portal", "wait"]

#: How long leaving waits for a cancelled call to end on the trio side (Ctrl-C, task cancel).
CANCEL_WAIT = 5.0
#: How long closing a client (and interpreter exit) waits for its thread: held locks and leases
#: are released together within ``lock.CLEANUP_TIMEOUT`` (5 s), then each close-time job of the
#: client (revoking its leases...) within ``_caller.CLOSER_TIMEOUT`` (2 s).
CLOSE_WAIT = 10.0

_live_portals: weakref.WeakSet[Portal] = weakref.WeakSet()


class Portal:
    """A daemon thread running one trio loop that holds one open trio client (``target``)."""

    def __init__(self, opener: Callable[[], AsyncContextManager[Any]], name: str) -> None:
        self.pid = os.getpid()
        self.target: Any = None
        self.opened = Pending()  # the trio client, once connected
        self.finished = Pending()  # set when the thread's trio run has ended
        self._opener = opener
        self._token: trio.lowlevel.TrioToken | None = None
        self._calls: trio.Nursery | None = None
        self._idle: list[trio.lowlevel.Task] = []  # runners waiting for a call (_spawn)
        # Calls submitted since the last wake-up of the loop: one wake-up (a write to trio's
        # wake-up socket, which costs the writer tens of µs) starts them all.
        self._outbox: list[Call] = []
        self._outbox_lock = threading.Lock()
        self._outbox_scheduled = False
        self._main_scope: trio.CancelScope | None = None
        self._stop: trio.Event | None = None
        self._closing = False
        self._failure: BaseException | None = None  # what ended the loop, if not closing
        self._thread = threading.Thread(target=self._thread_main, name=name, daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait()  # the token exists: calls can be queued from now on
        _live_portals.add(self)

    # The trio side.

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # never a traceback from the daemon thread
            self.opened.fail(exc)
        finally:
            self._ready.set()
            self.opened.fail(ClientClosedError("the client is closed"))
            self.finished.succeed(None)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        with trio.CancelScope() as scope:
            self._main_scope = scope
            self._ready.set()
            try:
                async with self._opener() as target, trio.open_nursery() as calls:
                    self.target = target
                    self._calls = calls
                    self.opened.succeed(target)
                    await self._stop.wait()
                    calls.cancel_scope.cancel()
            except BaseException as exc:
                if self.opened.done and not self._closing:
                    self._failure = exc  # the client's own tasks failed: calls now say why
                self.opened.fail(exc)
                if not isinstance(exc, (Exception, trio.Cancelled)):
                    raise

    def closed_error(self, message: str = "the client is closed") -> ClientClosedError:
        """The error for a call that cannot run (or went on) because the client is closed; it
        names what ended the client when that was a failure rather than ``close()``."""
        failure = self._failure
        if failure is None:
            return ClientClosedError(message)
        error = ClientClosedError(f"{message}: its connection task failed: {failure!r}")
        error.__cause__ = failure
        return error

    def _spawn(self, call: Call) -> None:
        if self._calls is None or self._stop is None or self._stop.is_set():
            call.outcome.fail(self.closed_error())
            return
        idle = self._idle
        if idle:  # hand it to a parked runner: cheaper than starting a task per call
            trio.lowlevel.reschedule(idle.pop(), Value(call))
        else:
            self._calls.start_soon(self._runner, [call])

    async def _runner(self, first: list[Call]) -> None:
        """Run calls one after the other; between them, park among the idle runners.

        The first call comes in a list that is emptied: older trio (0.25, the oldest allowed) reads
        frames' ``f_locals`` (its Ctrl-C protection), and on Python < 3.13 that keeps a copy of the
        arguments with the parked runner's frame, which would keep the first call (and what
        it refers to, an observer...) alive."""
        call = first.pop()
        idle = self._idle
        task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            idle.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        while True:
            # One cancel scope for the calls of this runner (one per call costs a few µs),
            # until one of them is cancelled (``cancel`` spares calls that have ended).
            with trio.CancelScope() as scope:
                while True:
                    call.scope = scope
                    if call.cancelled:
                        scope.cancel()
                    await self._run_call(call)
                    # The scope is the call's while it runs, no longer: a late ``cancel`` (at
                    # interpreter exit an outcome may stay unsettled) must not reach this
                    # runner parked, or its next call. So only ``cancel`` cancels this scope,
                    # only while the call runs and after marking the call: the flag is the
                    # cheaper test (a cancel too late for the call costs a new scope).
                    call.scope = None
                    if call.cancelled:
                        break
                    idle.append(task)
                    del call  # parked, it must not keep its last call's objects alive
                    call = await trio.lowlevel.wait_task_rescheduled(abort)
            idle.append(task)
            del call
            call = await trio.lowlevel.wait_task_rescheduled(abort)

    async def _run_call(self, call: Call) -> None:
        outcome = call.outcome
        try:
            try:
                outcome.succeed(await call.fn(*call.args, **call.kwargs))
            except trio.Cancelled:
                raise
            except BaseException as exc:
                outcome.fail(exc)
        finally:
            if not outcome.done:
                outcome.fail(self.ended(call.cancelled))

    # The other side.

    def forked(self) -> bool:
        """Whether this is a forked child of the process that opened the portal (which has
        no loop thread here)."""
        return self.pid != _pending.process_id

    @staticmethod
    def forked_error() -> ForkedError:
        return ForkedError(
            "this client was opened before os.fork(); connect again in the child process"
        )

    def check(self) -> None:
        """Raise unless calls may go in: not closed, same process, not on the portal thread."""
        if self.pid != _pending.process_id:
            raise self.forked_error()
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "a blocking call on the client's own loop thread would wait for itself"
            )
        if self._closing:
            park_if_exiting()
            raise self.closed_error()
        if self._failure is not None:
            raise self.closed_error()

    def ended(self, cancelled: bool) -> ClientClosedError:
        if cancelled:
            return ClientClosedError("the call was cancelled")
        return self.closed_error("the client was closed while the call ran")

    def on_own_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def run_sync_soon(self, fn: Callable[..., object], *args: Any) -> None:
        token = self._token
        if token is None:
            raise self.closed_error()
        if self.pid != _pending.process_id:  # a forked child: no loop thread would run it
            raise self.forked_error()
        try:
            token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            park_if_exiting()
            raise self.closed_error() from self._failure

    def submit(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Call:
        """Start ``await fn(*args, **kwargs)`` as a task of the portal."""
        self.check()
        call = Call(fn, args, kwargs)
        self.queue(call)
        return call

    def queue(self, call: Call) -> None:
        """Have a runner start ``call``; from any thread, the portal's own included (nothing
        waits here). ``ClientClosedError`` if the loop has ended."""
        with self._outbox_lock:
            self._outbox.append(call)
            if self._outbox_scheduled:
                return  # a wake-up of the loop is on its way: it takes this one too
            self._outbox_scheduled = True
        try:
            self.run_sync_soon(self._spawn_all)
        except ClientClosedError:
            with self._outbox_lock:
                self._outbox.clear()
                self._outbox_scheduled = False
            raise

    def _spawn_all(self) -> None:
        with self._outbox_lock:
            calls, self._outbox = self._outbox, []
            self._outbox_scheduled = False
        for call in calls:
            self._spawn(call)

    def call_sync(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Pending:
        """Run a plain function on the portal thread (to read state its tasks change)."""
        self.check()
        pending = Pending()

        def run() -> None:
            try:
                pending.succeed(fn(*args, **kwargs))
            except BaseException as exc:
                pending.fail(exc)

        self.run_sync_soon(run)
        return pending

    def hold(self, cm: AsyncContextManager[Any]) -> Holder:
        """Enter ``cm`` in a task of its own; ``holder.request_exit(...)`` leaves it."""
        self.check()
        holder = Holder(self)

        def spawn() -> None:
            if self._calls is None or self._stop is None or self._stop.is_set():
                holder.entered.fail(self.closed_error())
                holder.exited.succeed(False)
                return
            self._calls.start_soon(holder.run, cm)

        self.run_sync_soon(spawn)
        return holder

    def cancel(self, what: Call | Holder) -> None:
        """Cancel a call's (or a held manager's) task, from any thread; no wait."""
        what.cancelled = True

        def cancel() -> None:
            # A call's scope is its runner's, and the call's only while it runs (the runner
            # clears ``scope`` after it): it must not reach the runner's next call.
            if what.scope is not None and not (isinstance(what, Call) and what.outcome.done):
                what.scope.cancel()

        try:
            self.run_sync_soon(cancel)
        except ClientClosedError:
            pass

    def close_soon(self) -> None:
        """Start closing: end every call, run the client's close-time jobs, end the thread."""
        if self._closing or self.forked():
            return
        self._closing = True
        try:
            self.run_sync_soon(self._stop_now)
        except ClientClosedError:
            pass

    def _stop_now(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if not self.opened.done and self._main_scope is not None:
            self._main_scope.cancel()  # still connecting

    def close(self, timeout: float = CLOSE_WAIT) -> None:
        """Close and wait (bounded) for the thread to end."""
        self.close_soon()
        can_wait = threading.current_thread() is not self._thread and not self.forked()
        if can_wait and self.finished.wait(timeout):
            self._thread.join(timeout)  # its last steps: then no thread is left behind


def wait(portal: Portal, outcome: Pending, what: Call | Holder | None) -> Any:
    """Block for an outcome; if the wait is interrupted (Ctrl-C), cancel ``what``'s task."""
    try:
        outcome.wait()
    except BaseException:
        if what is not None:
            portal.cancel(what)
        outcome.wait(CANCEL_WAIT)
        raise
    return outcome.result()


@atexit.register
def _close_at_exit() -> None:
    """Close the clients left open, so that leases are revoked and nothing prints at exit."""
    # Threads still waiting for a call are daemon threads (the interpreter waited for the
    # others): they keep waiting, to end with the interpreter, rather than wake up with an
    # error that would print a traceback.
    _pending.exiting = True
    portals = [portal for portal in list(_live_portals) if not portal.forked()]
    for portal in portals:
        portal.close_soon()
    for portal in portals:
        portal.finished.wait(CLOSE_WAIT)
