"""One trio loop in a daemon thread, driven from other threads or from an asyncio loop.

The blocking face (``sync``) and the asyncio face (``aio``) own one ``Portal`` each per
client: a thread that runs ``trio.run``, opens the trio ``Client`` there and keeps it until
closed. Everything the faces do is a call into that loop: ``submit`` starts a task for one
coroutine and reports its outcome through a ``Pending``; ``hold`` enters an async context
manager in a task of its own and keeps it entered until the other side leaves its block (so
cancel scopes and nurseries inside the manager stay in one task, as trio requires). The other
side waits on a ``Pending`` by blocking (``wait``) or by awaiting an asyncio future
(``wait_async``); giving up the wait (Ctrl-C, a cancelled asyncio task) cancels the trio task,
which resets its HTTP/2 stream and leaves the connection healthy.

No protocol or etcd logic lives here or in the faces: they only move calls across.
"""

from __future__ import annotations

import atexit
import inspect
import os
import socket
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Generic, Optional, TypeVar, overload

import trio
from outcome import Value

from puregrpc_etcd.errors import EtcdError

if sys.version_info >= (3, 10):
    from typing import Concatenate, ParamSpec

    P = ParamSpec("P")
else:  # annotations are strings at run time: Generic only needs a type variable there
    P = TypeVar("P")

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable
    from types import TracebackType
    from typing import AsyncContextManager

__all__ = [
    "ClientClosedError",
    "Face",
    "ForkedError",
    "Forward",
    "Holder",
    "Pending",
    "Portal",
    "same",
]

#: How long leaving waits for a cancelled call to end on the trio side (Ctrl-C, task cancel).
CANCEL_WAIT = 5.0
#: How long closing a client (and interpreter exit) waits for its thread: the close-time jobs
#: (revoking leases, deleting lock keys) are bounded by the client's own 2 s per job.
CLOSE_WAIT = 10.0

R = TypeVar("R")
T = TypeVar("T")
W = TypeVar("W")
ExcInfo = tuple[Optional[type[BaseException]], Optional[BaseException], Optional["TracebackType"]]
_NO_EXC: ExcInfo = (None, None, None)


class ClientClosedError(EtcdError):
    """The client was closed before or while the call ran (``close()``, leaving its block)."""


class ForkedError(ClientClosedError):
    """A client (or a watcher, lock, lease... of one) opened before ``os.fork()`` was used in
    the child. The child does not share the parent's loop, thread or sockets: connect anew
    there (``sync.connect(...)`` / ``aio.connect(...)``)."""


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
        if _exiting and isinstance(error, ClientClosedError):
            return  # see _close_at_exit
        with self._lock:
            if self.done:
                return
            self._value = value
            self._error = error
            self.done = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
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
        wakeup = _thread_wakeup()
        with self._lock:
            if self.done:
                return True
            self._callbacks.append(wakeup.wake)
        return wakeup.wait_for(self, timeout)

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


#: This process's id, renewed in a forked child: os.getpid() is a system call per call.
_pid = os.getpid()


def _after_fork_in_child() -> None:
    global _mailboxes_lock, _pid
    _pid = os.getpid()
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
    """How a thread sleeps until the trio thread wakes it: a socket pair, one per thread.

    Not a lock: on PyPy a lock released in one thread for another costs ~140 µs (the GIL
    hand-over), a byte through a socket ~3 µs (CPython: 4 and 3 µs). A wake-up meant for a wait
    given up (Ctrl-C) may arrive later; waits therefore re-check what they wait for.
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

    def __del__(self) -> None:
        self._receive.close()
        self._send.close()


_wakeups = threading.local()


def _thread_wakeup() -> _Wakeup:
    wakeup: _Wakeup | None = getattr(_wakeups, "wakeup", None)
    if wakeup is None or wakeup.pid != _pid:  # a forked child has sockets of its own
        wakeup = _wakeups.wakeup = _Wakeup()
    return wakeup


class Call:
    """One coroutine run as a trio task of the portal, cancellable from the other side."""

    __slots__ = ("args", "cancelled", "fn", "kwargs", "outcome", "scope")

    def __init__(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.outcome = Pending()
        self.scope: trio.CancelScope | None = None
        self.cancelled = False


class Holder:
    """An async context manager entered by a task of the portal and held until ``exit``."""

    __slots__ = ("_exc_info", "_exit", "_portal", "cancelled", "entered", "exited", "scope")

    def __init__(self, portal: Portal) -> None:
        self._portal = portal
        self.cancelled = False
        self.entered = Pending()
        self.exited = Pending()
        self.scope: trio.CancelScope | None = None
        self._exit: trio.Event | None = None
        self._exc_info: ExcInfo = _NO_EXC

    def request_exit(self, exc_info: ExcInfo) -> None:
        """Ask the holding task to leave the manager with ``exc_info`` (from any thread)."""
        self._exc_info = exc_info
        self._portal.run_sync_soon(self._set_exit)

    def _set_exit(self) -> None:
        if self._exit is not None:
            self._exit.set()

    def cancel(self) -> None:
        self._portal.cancel(self)


class Face:
    """A trio object (``_target``) used through its client's portal: what both faces' classes
    are made of."""

    __slots__ = ("_portal", "_target")

    def __init__(self, portal: Portal, target: Any) -> None:
        self._portal = portal
        self._target = target

    def __repr__(self) -> str:
        return f"<{type(self).__module__.rsplit('.', 1)[-1]} {self._target!r}>"


class Forward:
    """Base of the faces' descriptors: ``name = Kind(TrioClass.name[, wrap])`` in a face class
    forwards to the trio method of that name on the face's target (a namespace view's own
    methods included), through ``make(portal, bound_method, wrap)``; ``wrap(portal, result)``
    turns trio results into faces. The trio method is kept (``_method``) for the test that
    checks the faces against the trio classes."""

    def __init__(self, method: Callable[..., Any], wrap: Callable[[Portal, Any], Any]) -> None:
        self._method = method
        self._wrap = wrap
        self.__doc__ = method.__doc__

    def _bind(
        self, face: Face | None, make: Callable[[Portal, Callable[..., Any], Any], Any]
    ) -> Any:
        if face is None:
            return self
        method = getattr(face._target, self._method.__name__)
        forwarding = make(face._portal, method, self._wrap)
        forwarding.__doc__ = self.__doc__
        forwarding.__wrapped__ = method  # inspect.signature shows the trio parameters
        return forwarding


def same(portal: Portal, value: T) -> T:
    """The ``wrap`` of results that are plain data (no face needed)."""
    return value


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


class Made(Forward, Generic[P, T, W]):
    """``name = Made(TrioClass.name, Face)``: a plain trio method whose result (a watch context,
    an election...) is wrapped in its face. It runs on the loop thread, the caller waiting for
    that one hop (no I/O), so that it never races the loop's tasks."""

    def __init__(
        self, method: Callable[Concatenate[Any, P], T], wrap: Callable[[Portal, T], W]
    ) -> None:
        super().__init__(method, wrap)

    @overload
    def __get__(self, face: None, owner: type) -> Made[P, T, W]: ...
    @overload
    def __get__(self, face: Face, owner: type) -> Callable[P, W]: ...
    def __get__(self, face: Face | None, owner: type) -> Any:
        return self._bind(face, _made)


def _made(portal: Portal, method: Any, wrap: Any) -> Callable[..., Any]:
    def make(*args: Any, **kwargs: Any) -> Any:
        return wrap(portal, wait(portal, portal.call_sync(method, *args, **kwargs), None))

    return make


def like(fn: Callable[P, Any]) -> Callable[[Callable[..., R]], Callable[P, R]]:
    """Give the decorated function ``fn``'s parameters (for mypy and ``inspect``)."""

    def give(wrapper: Callable[..., R]) -> Callable[P, R]:
        wrapper.__signature__ = inspect.signature(fn).replace(  # type: ignore[attr-defined]
            return_annotation=inspect.signature(wrapper).return_annotation
        )
        return wrapper

    return give


async def await_it(awaitable: Awaitable[T]) -> T:
    """``await awaitable`` as a coroutine function (to submit an awaitable object)."""
    return await awaitable


# Read-only views of trio objects, shared by both faces.


class LockFields(Face):
    """``name``, ``key``, ``lease_id``, ``revision`` (a fencing token) and ``lost`` (a
    ``trio.Event``: read ``lost.is_set()``) of a held lock."""

    __slots__ = ()

    @property
    def name(self) -> bytes:
        return self._target.name  # type: ignore[no-any-return]

    @property
    def key(self) -> bytes:
        return self._target.key  # type: ignore[no-any-return]

    @property
    def lease_id(self) -> int:
        return self._target.lease_id  # type: ignore[no-any-return]

    @property
    def revision(self) -> int:
        return self._target.revision  # type: ignore[no-any-return]

    @property
    def lost(self) -> trio.Event:
        return self._target.lost  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return repr(self._target)


class WatcherFields(Face):
    """``revision`` (the last one the watcher has observed) and ``pending`` of a watcher."""

    __slots__ = ()

    @property
    def revision(self) -> int:
        return self._target.revision  # type: ignore[no-any-return]

    @property
    def pending(self) -> int:
        return self._target.pending  # type: ignore[no-any-return]


class MirrorFields(Face):
    """``revision`` and ``resyncs`` of a mirror."""

    __slots__ = ()

    @property
    def revision(self) -> int:
        return self._target.revision  # type: ignore[no-any-return]

    @property
    def resyncs(self) -> int:
        return self._target.resyncs  # type: ignore[no-any-return]


_exiting = False
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
            self._calls.start_soon(self._runner, call)

    async def _runner(self, call: Call) -> None:
        """Run calls one after the other; between them, park among the idle runners."""
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
                    if scope.cancel_called:
                        break
                    idle.append(task)
                    call = await trio.lowlevel.wait_task_rescheduled(abort)
            idle.append(task)
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
                outcome.fail(self._ended(call.cancelled))

    async def _hold(self, holder: Holder, cm: AsyncContextManager[Any]) -> None:
        exit_event = holder._exit = trio.Event()
        try:
            with trio.CancelScope() as scope:
                holder.scope = scope
                if holder.cancelled:
                    scope.cancel()
                try:
                    holder.entered.succeed(await cm.__aenter__())
                except trio.Cancelled:
                    raise
                except BaseException as exc:
                    holder.entered.fail(exc)
                    holder.exited.succeed(False)
                    return
                try:
                    await exit_event.wait()
                    exc_info = holder._exc_info
                except trio.Cancelled as cancelled:
                    # Cancelled inside the manager (cancel_on_loss) or by closing the client.
                    exc_info = (type(cancelled), cancelled, cancelled.__traceback__)
                try:
                    suppressed = await cm.__aexit__(*exc_info)
                except BaseException as exc:
                    if isinstance(exc, trio.Cancelled):
                        raise
                    if exc is not exc_info[1]:
                        holder.exited.fail(exc)
                        return
                    suppressed = False
                # A body the manager ended by itself (cancel_on_loss) is not the other side's
                # block: its exception, if any, is not to be swallowed.
                ours = exc_info[1] is holder._exc_info[1]
                holder.exited.succeed(bool(suppressed) and ours)
        finally:
            if not holder.entered.done:
                holder.entered.fail(self._ended(holder.cancelled))
            if not holder.exited.done:
                holder.exited.fail(self._ended(holder.cancelled))

    # The other side.

    def check(self) -> None:
        """Raise unless calls may go in: not closed, same process, not on the portal thread."""
        if self.pid != _pid:
            raise ForkedError(
                "this client was opened before os.fork(); connect again in the child process"
            )
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "a blocking call on the client's own loop thread would wait for itself"
            )
        if self._closing:
            _park_if_exiting()
            raise self.closed_error()
        if self._failure is not None:
            raise self.closed_error()

    def _ended(self, cancelled: bool) -> ClientClosedError:
        if cancelled:
            return ClientClosedError("the call was cancelled")
        return self.closed_error("the client was closed while the call ran")

    def on_own_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def run_sync_soon(self, fn: Callable[..., object], *args: Any) -> None:
        token = self._token
        if token is None:
            raise self.closed_error()
        try:
            token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            _park_if_exiting()
            raise self.closed_error() from self._failure

    def submit(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Call:
        """Start ``await fn(*args, **kwargs)`` as a task of the portal."""
        self.check()
        call = Call(fn, args, kwargs)
        with self._outbox_lock:
            self._outbox.append(call)
            if self._outbox_scheduled:
                return call  # a wake-up of the loop is on its way: it takes this one too
            self._outbox_scheduled = True
        try:
            self.run_sync_soon(self._spawn_all)
        except ClientClosedError:
            with self._outbox_lock:
                self._outbox.clear()
                self._outbox_scheduled = False
            raise
        return call

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
            self._calls.start_soon(self._hold, holder, cm)

        self.run_sync_soon(spawn)
        return holder

    def cancel(self, what: Call | Holder) -> None:
        """Cancel a call's (or a held manager's) task, from any thread; no wait."""
        what.cancelled = True

        def cancel() -> None:
            # A call's scope is its runner's: once the call has ended it belongs to the next.
            if what.scope is not None and not (isinstance(what, Call) and what.outcome.done):
                what.scope.cancel()

        try:
            self.run_sync_soon(cancel)
        except ClientClosedError:
            pass

    def close_soon(self) -> None:
        """Start closing: end every call, run the client's close-time jobs, end the thread."""
        if self._closing or self.pid != os.getpid():
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
        if threading.current_thread() is not self._thread and self.pid == os.getpid():
            self.finished.wait(timeout)


def _park_if_exiting() -> None:
    """At interpreter exit, a daemon thread that calls a closed client waits for the end."""
    if _exiting and threading.current_thread().daemon:
        threading.Event().wait()


@atexit.register
def _close_at_exit() -> None:
    """Close the clients left open, so that leases are revoked and nothing prints at exit."""
    global _exiting
    # Threads still waiting for a call are daemon threads (the interpreter waited for the
    # others): they keep waiting, to end with the interpreter, rather than wake up with an
    # error that would print a traceback.
    _exiting = True
    portals = [portal for portal in list(_live_portals) if portal.pid == os.getpid()]
    for portal in portals:
        portal.close_soon()
    for portal in portals:
        portal.finished.wait(CLOSE_WAIT)
