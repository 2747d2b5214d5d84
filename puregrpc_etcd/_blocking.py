"""How the blocking face (``puregrpc_etcd.sync``) forwards: a call waits for its outcome in the
calling thread (``run``), a trio context manager is held by a task of the portal while the
thread is in its ``with`` block (``Held``), a trio async iterator is iterated with ``for``
(``iterate``). ``BlockingFace`` is the base of the face's classes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

from puregrpc_etcd import _face, _portal
from puregrpc_etcd._pending import ClientClosedError
from puregrpc_etcd._portal import wait

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Iterator
    from types import TracebackType

    from puregrpc_etcd._portal import Portal

__all__ = ["BlockingFace", "Held", "HeldFace", "IteratorFace", "iterate", "run", "run_taking"]

T = TypeVar("T")
W = TypeVar("W")


def run(portal: Portal, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> Any:
    call = portal.submit(fn, *args, **kw)
    return wait(portal, call.outcome, call)


def run_taking(portal: Portal, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> Any:
    """``run`` for a call that takes a lock: if the wait is interrupted (Ctrl-C) when the trio
    side has taken it already, nobody could release it (a ``try_lock`` session would keep it
    until the client closed); it is released (bounded) before the interruption goes on."""
    call = portal.submit(fn, *args, **kw)
    try:
        return wait(portal, call.outcome, call)
    except BaseException:
        _face.release_when_taken(portal, call).wait(_portal.CANCEL_WAIT)
        raise


def _blocking(portal: Portal, method: Any, wrap: Any) -> Callable[..., Any]:
    if wrap is _face.same:

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return run(portal, method, *args, **kwargs)

        return blocking

    def blocking_wrapped(*args: Any, **kwargs: Any) -> Any:
        # Wrapped results are objects of the client's (a lock): see run_taking.
        return wrap(portal, run_taking(portal, method, *args, **kwargs))

    return blocking_wrapped


class Held(_face.HeldBase[W]):
    """A trio async context manager entered from this thread: ``with held as value:``."""

    __slots__ = ()

    def __enter__(self) -> W:
        holder = self._hold()
        try:
            value = wait(self._portal, holder.entered, holder)
        except BaseException:
            if not holder.exited.done:
                holder.exited.wait(_portal.CANCEL_WAIT)
            raise
        return self._wrap(value)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        holder = self._leave((exc_type, exc, tb))
        if holder is None or self._portal.on_own_thread():  # collected there: no wait
            return False
        return bool(wait(self._portal, holder.exited, holder))


def iterate(portal: Portal, iterator: AsyncIterator[T], owned: bool = True) -> Iterator[T]:
    """Iterate a trio async iterator from a thread; closing this closes that (``aclose``) when
    the iteration ``owned`` it (an ``Iterated`` method's result, made for this loop)."""
    try:
        while True:
            yield run(portal, iterator.__anext__)
    except StopAsyncIteration:
        return
    finally:
        aclose = getattr(iterator, "aclose", None) if owned else None
        if aclose is not None and not portal.on_own_thread():
            try:
                run(portal, aclose)
            except ClientClosedError:
                pass


class BlockingFace(_face.Face):
    """The base of the blocking face's classes: its methods block for their results."""

    __slots__ = ()
    _awaited = staticmethod(_blocking)
    _entered = staticmethod(_face.entering(Held))
    _iterated = staticmethod(_face.iterating(iterate))


class HeldFace(_face.Wrapping[W], BlockingFace):
    """The face of a trio async context manager: ``with face as value:``."""

    __slots__ = ()
    _held: Held[W]

    def __enter__(self) -> W:
        self._held = Held(self._portal, self._target, self._wrap)
        return self._held.__enter__()

    def __exit__(self, *exc_info: Any) -> bool:
        return self._held.__exit__(*exc_info)


class IteratorFace(BlockingFace, Generic[T]):
    """The face of a trio async iterator (``_target``): ``for item in face``. Each ``for`` is a
    loop over it, not its owner: leaving one leaves the iterator open for the next (as ``async
    for`` on trio); it ends with its ``with`` block or its ``close()`` (an observer also once
    dropped; a watcher only with its watch's ``with`` block)."""

    __slots__ = ()

    def __iter__(self) -> Iterator[T]:
        return iterate(self._portal, self._target, owned=False)
