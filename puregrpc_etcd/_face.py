"""How the faces forward to the trio objects: ``Face`` (a trio object used through its client's
portal) and the descriptors their classes are declared with.

``name = Kind(TrioClass.name[, wrap])`` in a face class forwards to the trio method of that name
on the face's target. One declaration serves both faces: ``Awaited`` (an async method),
``Entered`` (an async context manager method) and ``Iterated`` (an async generator method) are
typed for each face by the face's base class (``_blocking.BlockingFace``: values, context
managers, iterators; ``_awaiting.AwaitingFace``: awaitables, async context managers, async
iterators), and at run time take the face's way of forwarding from that base class. ``Made``
(a plain method) is the same on both faces.
"""

from __future__ import annotations

import inspect
import sys
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, TypeVar, overload

from puregrpc_etcd._pending import ClientClosedError, Pending
from puregrpc_etcd._portal import wait
from puregrpc_etcd._tasks import Call

if sys.version_info >= (3, 10):
    from typing import Concatenate, ParamSpec

    P = ParamSpec("P")
else:  # annotations are strings at run time: Generic only needs a type variable there
    P = TypeVar("P")

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Iterator
    from typing import AsyncContextManager

    from puregrpc_etcd import _awaiting, _blocking
    from puregrpc_etcd._portal import Portal
    from puregrpc_etcd._tasks import ExcInfo, Holder

__all__ = [
    "Awaited",
    "Entered",
    "Face",
    "Forward",
    "HeldBase",
    "Iterated",
    "Made",
    "Wrapping",
    "await_it",
    "entering",
    "iterating",
    "like",
    "release_when_taken",
    "same",
]

R = TypeVar("R")
T = TypeVar("T")
W = TypeVar("W")

#: ``make(portal, bound_trio_method, wrap)``: the face's callable for one trio method.
Maker = Callable[["Portal", Callable[..., Any], Any], Callable[..., Any]]


class Face:
    """A trio object (``_target``) used through its client's portal: what both faces' classes
    are made of. Each face's base class says how it forwards (``_awaited``, ``_entered``,
    ``_iterated``: the makers of its ``Awaited``, ``Entered`` and ``Iterated`` methods)."""

    __slots__ = ("_bound", "_portal", "_target")
    if TYPE_CHECKING:  # not at run time: typing.get_type_hints() must work on the faces
        _awaited: ClassVar[staticmethod[[Portal, Any, Any], Callable[..., Any]]]
        _entered: ClassVar[staticmethod[[Portal, Any, Any], Callable[..., Any]]]
        _iterated: ClassVar[staticmethod[[Portal, Any, Any], Callable[..., Any]]]

    def __init__(self, portal: Portal, target: Any) -> None:
        self._portal = portal
        self._target = target
        #: The forwarding callables made so far, by descriptor (``Forward._bind``): a face's
        #: method is made once, not at each attribute access.
        self._bound: dict[Forward, Callable[..., Any]] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__module__.rsplit('.', 1)[-1]} {self._target!r}>"


class Forward:
    """Base of the faces' descriptors: forwards to the trio method of its name on the face's
    target (a namespace view's own methods included), through ``make(portal, bound_method,
    wrap)``; ``wrap(portal, result)`` turns trio results into faces. The trio method is kept
    (``_method``) for the test that checks the faces against the trio classes."""

    def __init__(self, method: Callable[..., Any], wrap: Callable[[Portal, Any], Any]) -> None:
        self._method = method
        self._wrap = wrap
        self.__doc__ = method.__doc__

    def _bind(self, face: Face, make: Maker) -> Any:
        forwarding: Any = face._bound.get(self)
        if forwarding is None:
            method = getattr(face._target, self._method.__name__)
            forwarding = make(face._portal, method, self._wrap)
            forwarding.__doc__ = self.__doc__
            forwarding.__wrapped__ = method  # inspect.signature shows the trio parameters
            face._bound[self] = forwarding
        return forwarding


def same(portal: Portal, value: T) -> T:
    """The ``wrap`` of results that are plain data (no face needed)."""
    return value


class Awaited(Forward, Generic[P, T, W]):
    """``name = Awaited(TrioClass.name[, wrap])``: an async method; blocking, it returns the
    value, on asyncio an awaitable."""

    @overload
    def __init__(
        self: Awaited[P, T, T], method: Callable[Concatenate[Any, P], Awaitable[T]]
    ) -> None: ...
    @overload
    def __init__(
        self,
        method: Callable[Concatenate[Any, P], Awaitable[T]],
        wrap: Callable[[Portal, T], W],
    ) -> None: ...
    def __init__(self, method: Any, wrap: Any = same) -> None:
        super().__init__(method, wrap)

    @overload
    def __get__(self, face: None, owner: type) -> Awaited[P, T, W]: ...
    @overload
    def __get__(self, face: _blocking.BlockingFace, owner: type) -> Callable[P, W]: ...
    @overload
    def __get__(self, face: _awaiting.AwaitingFace, owner: type) -> Callable[P, Awaitable[W]]: ...
    def __get__(self, face: Face | None, owner: type) -> Any:
        return self if face is None else self._bind(face, face._awaited)


class Entered(Forward, Generic[P, T, W]):
    """``name = Entered(TrioClass.name[, wrap])``: an async context manager method, entered
    with ``with`` (blocking) or ``async with`` (asyncio); ``wrap(portal, value)`` gives what the
    block binds (``with client.lease(10) as lease:``)."""

    @overload
    def __init__(
        self: Entered[P, T, T],
        method: Callable[Concatenate[Any, P], AsyncContextManager[T]],
    ) -> None: ...
    @overload
    def __init__(
        self,
        method: Callable[Concatenate[Any, P], AsyncContextManager[T]],
        wrap: Callable[[Portal, T], W],
    ) -> None: ...
    def __init__(self, method: Any, wrap: Any = same) -> None:
        super().__init__(method, wrap)

    @overload
    def __get__(self, face: None, owner: type) -> Entered[P, T, W]: ...
    @overload
    def __get__(
        self, face: _blocking.BlockingFace, owner: type
    ) -> Callable[P, _blocking.Held[W]]: ...
    @overload
    def __get__(
        self, face: _awaiting.AwaitingFace, owner: type
    ) -> Callable[P, _awaiting.Held[W]]: ...
    def __get__(self, face: Face | None, owner: type) -> Any:
        return self if face is None else self._bind(face, face._entered)


class Iterated(Forward, Generic[P, T]):
    """``name = Iterated(TrioClass.name)``: an async generator method, iterated with ``for``
    (blocking) or ``async for`` (asyncio)."""

    def __init__(self, method: Callable[Concatenate[Any, P], AsyncIterator[T]]) -> None:
        super().__init__(method, same)

    @overload
    def __get__(self, face: None, owner: type) -> Iterated[P, T]: ...
    @overload
    def __get__(self, face: _blocking.BlockingFace, owner: type) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(
        self, face: _awaiting.AwaitingFace, owner: type
    ) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, face: Face | None, owner: type) -> Any:
        return self if face is None else self._bind(face, face._iterated)


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
        return self if face is None else self._bind(face, _made)


def _made(portal: Portal, method: Any, wrap: Any) -> Callable[..., Any]:
    def make(*args: Any, **kwargs: Any) -> Any:
        return wrap(portal, wait(portal, portal.call_sync(method, *args, **kwargs), None))

    return make


def entering(held: Callable[[Portal, Any, Callable[[Any], Any]], Any]) -> Maker:
    """The maker of ``Entered`` methods for a face whose context managers are ``held``."""

    def make(portal: Portal, method: Any, wrap: Any) -> Callable[..., Any]:
        def entering(*args: Any, **kwargs: Any) -> Any:
            return held(portal, method(*args, **kwargs), lambda value: wrap(portal, value))

        return entering

    return make


def iterating(iterate: Callable[[Portal, Any], Any]) -> Maker:
    """The maker of ``Iterated`` methods for a face that iterates with ``iterate``."""

    def make(portal: Portal, method: Any, wrap: Any) -> Callable[..., Any]:
        def iterating(*args: Any, **kwargs: Any) -> Any:
            return iterate(portal, method(*args, **kwargs))

        return iterating

    return make


class HeldBase(Generic[W]):
    """A trio async context manager that a face enters in a task of the portal
    (``Portal.hold``) and leaves from its own side; ``wrap(value)`` gives what its block
    binds. Each face's ``Held`` adds its protocol."""

    __slots__ = ("_cm", "_holder", "_portal", "_wrap")

    def __init__(
        self, portal: Portal, cm: AsyncContextManager[Any], wrap: Callable[[Any], W]
    ) -> None:
        self._portal = portal
        self._cm = cm
        self._wrap = wrap
        self._holder: Holder | None = None

    def _hold(self) -> Holder:
        if self._holder is not None:
            raise RuntimeError("this context manager can be entered only once")
        holder = self._holder = self._portal.hold(self._cm)
        return holder

    def _leave(self, exc_info: ExcInfo) -> Holder | None:
        """Ask the holding task to leave with ``exc_info``: the holder to wait for, or None
        when there is nothing to wait for (never entered, or the client is closed)."""
        holder = self._holder
        if holder is None:
            return None
        try:
            holder.request_exit(exc_info)
        except ClientClosedError:
            return None
        return holder


class Wrapping(Face, Generic[W]):
    """Base of the faces of trio async context managers (``_target``): each face's
    ``HeldFace`` enters it through a ``Held`` kept in ``_held``; what the block binds is what
    ``_wrap`` makes of the trio value."""

    __slots__ = ("_held",)

    def _wrap(self, value: Any) -> W:
        raise NotImplementedError


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


def release_when_taken(portal: Portal, call: Call) -> Pending:
    """For a call that takes a lock and whose caller gave up waiting (a cancelled task, Ctrl-C):
    if the call takes it, now or later, nobody else could release it, so a task of the portal
    does, started by whichever thread sees the call end (no waiter needs to stay: a second
    cancel does not stop it). The outcome returned is done once that release has ended, or at
    once when there is nothing to release (nothing taken, or the client closed: closing ends
    the session, which lets go of the lock)."""
    released = Pending()

    def release_if_taken() -> None:
        try:
            value = call.outcome.result()
        except BaseException:
            value = None
        release = getattr(value, "release", None)
        if release is None:
            released.succeed(None)
            return
        releasing = Call(release, (), {})
        releasing.outcome.add_done_callback(lambda: released.succeed(None))
        try:
            portal.queue(releasing)
        except ClientClosedError:  # a forked child's, too
            released.succeed(None)

    call.outcome.add_done_callback(release_if_taken)
    return released
