"""Clean-up calls (revoking a lease, deleting a lock key): best effort, shielded and bounded.

On the way out they make one attempt, and none while etcd is known to be unreachable: a lease's
TTL ends what they could not, and retrying a dead cluster would only hold up the caller's exit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TypeVar

import trio

from puregrpc_etcd import _pending, errors

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from puregrpc_etcd._caller import Caller
    from puregrpc_etcd._rpcs import Rpc

__all__ = ["cleanup_call"]

log = logging.getLogger("puregrpc_etcd")

M = TypeVar("M", bound="Message")

#: How long after a clean-up call found etcd unreachable the next ones on the way out are
#: skipped (while nothing has connected since): nested blocks leave within moments.
UNREACHABLE_MEMORY = 2.0


def _warn(message: str, *args: object) -> None:
    """Log a clean-up that could not be done: a warning, but only debug while the interpreter
    exits. Then the faces close the clients a program left open (``_portal._close_at_exit``),
    which is to print nothing, and logging's last-resort handler would write a warning to
    stderr in a program that configured no logging."""
    log.log(logging.DEBUG if _pending.exiting else logging.WARNING, message, *args)


async def cleanup_call(
    caller: Caller,
    rpc: Rpc[M],
    request: Message,
    *,
    limit: float,
    what: str,
    on_exit: bool,
) -> M | None:
    """Send a clean-up call, shielded from cancellation and bounded by ``limit`` seconds.

    Returns the reply, or None when it failed (logged as "could not <what>") or when what it
    cleans up is gone already (``NotFoundError``). With ``on_exit`` it makes one attempt, and
    none if another found no endpoint reachable moments ago and nothing has connected since.
    """
    if (
        on_exit
        and trio.current_time() - caller.unreachable_at < UNREACHABLE_MEMORY
        and caller.channel.current_endpoint is None
    ):
        _warn("did not %s: etcd could not be reached", what)
        return None
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + limit
        try:
            reply = await caller.unary(rpc, request, timeout=limit, retries=0 if on_exit else None)
        except errors.NotFoundError:
            return None
        except errors.ConnectionFailedError as exc:
            if on_exit:
                caller.unreachable_at = trio.current_time()
            _warn("could not %s: %s", what, exc)
        except Exception as exc:  # best effort: the lease's TTL ends it in any case
            _warn("could not %s: %s", what, exc)
        else:
            return reply
    if scope.cancelled_caught:
        _warn("could not %s in %.1f s", what, limit)
    return None
