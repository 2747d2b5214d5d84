"""How the asyncio face (``puregrpc_etcd.aio``) forwards: a call is awaited through an asyncio
future (``wait_for``, ``run``), a trio context manager is held by a task of the portal while the
asyncio task is in its ``async with`` block (``Held``), a trio async iterator is iterated with
``async for`` (``iterate``). ``AwaitingFace`` is the base of the face's classes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

from puregrpc_etcd import _face, _portal
from puregrpc_etcd._pending import ClientClosedError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable
    from types import TracebackType

    from puregrpc_etcd._pending import Pending
    from puregrpc_etcd._portal import Portal
    from puregrpc_etcd._tasks import Call, Holder

__all__ = [
    "AwaitingFace",
    "Held",
    "HeldFace",
    "IteratorFace",
    "iterate",
    "run",
    "run_taking",
    "wait_for",
]

T = TypeVar("T")
Iter = TypeVar("Iter", bound="IteratorFace[Any]")
W = TypeVar("W")


async def wait_for(portal: Portal, outcome: Pending, what: Call | Holder | None) -> Any:
    """Await an outcome; if the awaiting task is cancelled, cancel ``what``'s trio task."""
    if not outcome.done:
        try:
            await outcome.wait_async(asyncio.get_running_loop())
        except asyncio.CancelledError:
            if what is not None:
                portal.cancel(what)
                # Trio ends the call at once (its stream reset, a lock's waiting key deleted):
                # let that finish, bounded, so that the task's cancellation is complete.
                await _ended(outcome)
            raise
    return outcome.result()


async def _ended(outcome: Pending) -> None:
    """Wait for an outcome of a cancelled trio task, bounded by ``CANCEL_WAIT``; its error is
    not raised (asyncio must not log it as never retrieved either)."""
    ending = outcome.wait_async(asyncio.get_running_loop())
    try:
        await asyncio.wait({ending}, timeout=_portal.CANCEL_WAIT)
    finally:  # also when this wait is cancelled in turn
        if ending.done() and not ending.cancelled():
            ending.exception()
        else:
            ending.cancel()


async def run(portal: Portal, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> Any:
    call = portal.submit(fn, *args, **kw)
    return await wait_for(portal, call.outcome, call)


async def run_taking(
    portal: Portal, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any
) -> Any:
    """``run`` for a call that takes a lock: if the task is cancelled when the trio side has
    taken it already, nobody could release it (a ``try_lock`` session would keep it until
    the client closed); it is released (bounded) before the cancellation ends the task."""
    call = portal.submit(fn, *args, **kw)
    try:
        return await wait_for(portal, call.outcome, call)
    except BaseException:
        await _ended(_face.release_when_taken(portal, call))
        raise


def _awaiting(portal: Portal, method: Any, wrap: Any) -> Callable[..., Any]:
    if wrap is _face.same:

        async def awaiting(*args: Any, **kwargs: Any) -> Any:
            call = portal.submit(method, *args, **kwargs)
            return await wait_for(portal, call.outcome, call)

        return awaiting

    async def awaiting_wrapped(*args: Any, **kwargs: Any) -> Any:
        # Wrapped results are objects of the client's (a lock): see run_taking.
        return wrap(portal, await run_taking(portal, method, *args, **kwargs))

    return awaiting_wrapped


class Held(_face.HeldBase[W]):
    """A trio async context manager entered from asyncio: ``async with held as value:``."""

    __slots__ = ()

    async def __aenter__(self) -> W:
        holder = self._hold()
        try:
            value = await wait_for(self._portal, holder.entered, holder)
        except BaseException:
            # Entered on the trio side as the task was cancelled: the holder leaves the manager
            # (a lock released, a lease revoked) before the cancellation ends the task.
            if not holder.exited.done:
                await _ended(holder.exited)
            raise
        return self._wrap(value)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        holder = self._leave((exc_type, exc, tb))
        if holder is None:
            return False
        return bool(await wait_for(self._portal, holder.exited, holder))


async def iterate(portal: Portal, iterator: AsyncIterator[T]) -> AsyncIterator[T]:
    """Iterate a trio async iterator from asyncio; closing this closes that (``aclose``)."""
    try:
        while True:
            yield await run(portal, iterator.__anext__)
    except StopAsyncIteration:
        return
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            try:
                await run(portal, aclose)
            except ClientClosedError:
                pass


class AwaitingFace(_face.Face):
    """The base of the asyncio face's classes: its methods give awaitables."""

    __slots__ = ()
    _awaited = staticmethod(_awaiting)
    _entered = staticmethod(_face.entering(Held))
    _iterated = staticmethod(_face.iterating(iterate))


class HeldFace(_face.Wrapping[W], AwaitingFace):
    """The face of a trio async context manager: ``async with face as value:``."""

    __slots__ = ()
    _held: Held[W]

    async def __aenter__(self) -> W:
        self._held = Held(self._portal, self._target, self._wrap)
        return await self._held.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> bool:
        return await self._held.__aexit__(*exc_info)


class IteratorFace(AwaitingFace, Generic[T]):
    """The face of a trio async iterator (``_target``): ``async for item in face``."""

    __slots__ = ()

    def __aiter__(self: Iter) -> Iter:
        return self

    async def __anext__(self) -> T:
        return await run(self._portal, self._target.__anext__)  # type: ignore[no-any-return]
