"""What the other side starts on the portal's loop: a ``Call`` (one coroutine, run by a
runner task of ``Portal``) and a ``Holder`` (an async context manager entered by a task of its
own, ``Holder.run``, and held until the other side leaves its block). Each reports through
``Pending`` outcomes and can be cancelled from any thread (``Portal.cancel``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

import trio

from puregrpc_etcd._pending import Pending

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from types import TracebackType
    from typing import AsyncContextManager

    from puregrpc_etcd._portal import Portal

__all__ = ["Call", "ExcInfo", "Holder"]

ExcInfo = tuple[Optional[type[BaseException]], Optional[BaseException], Optional["TracebackType"]]
_NO_EXC: ExcInfo = (None, None, None)


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

    async def run(self, cm: AsyncContextManager[Any]) -> None:
        """The holding task (on the portal's loop): enter, wait for ``request_exit``, leave."""
        exit_event = self._exit = trio.Event()
        try:
            with trio.CancelScope() as scope:
                self.scope = scope
                if self.cancelled:
                    scope.cancel()
                try:
                    self.entered.succeed(await cm.__aenter__())
                except trio.Cancelled:
                    raise
                except BaseException as exc:
                    self.entered.fail(exc)
                    self.exited.succeed(False)
                    return
                try:
                    await exit_event.wait()
                    exc_info = self._exc_info
                except trio.Cancelled as cancelled:
                    # Cancelled inside the manager (cancel_on_loss) or by closing the client.
                    exc_info = (type(cancelled), cancelled, cancelled.__traceback__)
                try:
                    suppressed = await cm.__aexit__(*exc_info)
                except BaseException as exc:
                    if isinstance(exc, trio.Cancelled):
                        raise
                    if exc is not exc_info[1]:
                        self.exited.fail(exc)
                        return
                    suppressed = False
                # A body the manager ended by itself (cancel_on_loss) is not the other side's
                # block: its exception, if any, is not to be swallowed.
                ours = exc_info[1] is self._exc_info[1]
                self.exited.succeed(bool(suppressed) and ours)
        finally:
            if not self.entered.done:
                self.entered.fail(self._portal.ended(self.cancelled))
            if not self.exited.done:
                self.exited.fail(self._portal.ended(self.cancelled))
