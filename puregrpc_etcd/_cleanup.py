"""Clean-up calls (revoking a lease, deleting a lock key): best effort, shielded and bounded.

On the way out they make one attempt, and none while etcd is known to be unreachable: a lease's
TTL ends what they could not, and retrying a dead cluster would only hold up the caller's exit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TypeVar

import trio

from puregrpc_etcd import errors

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from puregrpc_etcd._base import ClientBase
    from puregrpc_etcd._rpcs import Rpc

__all__ = ["cleanup_call"]

log = logging.getLogger("puregrpc_etcd")

M = TypeVar("M", bound="Message")

#: How long after a clean-up call found etcd unreachable the next ones on the way out are
#: skipped (while nothing has connected since): nested blocks leave within moments.
UNREACHABLE_MEMORY = 2.0


async def cleanup_call(
    client: ClientBase,
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
        and trio.current_time() - client._unreachable_at < UNREACHABLE_MEMORY
        and client._channel.current_endpoint is None
    ):
        log.warning("did not %s: etcd could not be reached", what)
        return None
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + limit
        try:
            reply = await client._unary(rpc, request, timeout=limit, retries=0 if on_exit else None)
        except errors.NotFoundError:
            return None
        except errors.ConnectionFailedError as exc:
            if on_exit:
                client._unreachable_at = trio.current_time()
            log.warning("could not %s: %s", what, exc)
        except Exception as exc:  # best effort: the lease's TTL ends it in any case
            log.warning("could not %s: %s", what, exc)
        else:
            return reply
    if scope.cancelled_caught:
        log.warning("could not %s in %.1f s", what, limit)
    return None
