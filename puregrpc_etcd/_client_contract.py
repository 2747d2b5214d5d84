"""The internal contract between the Client and its feature mixins, and ``check_timeout``.

KV, watch, lease, concurrency and mirror are written against ``ClientBase`` only: how calls are
sent (token, ``hasleader``, retries, deadlines, error mapping) lives in ``_caller.py``, how keys
are namespaced in ``_keys.py`` ``KeySpace``; ``client.py`` puts them together.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, AsyncContextManager, Coroutine, Protocol, TypeVar

from puregrpc_etcd._keys import ROOT, KeySpace

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from puregrpc_etcd._caller import Caller
    from puregrpc_etcd._rpcs import Rpc
    from puregrpc_etcd._streams import EtcdStream

M = TypeVar("M", bound="Message")


def check_timeout(timeout: object, what: str = "timeout") -> float | None:
    """A ``timeout`` argument as seconds: None, or a positive real number (not a bool).

    Every network call checks its ``timeout`` here before any I/O, so a bad one is a
    ``TypeError`` or ``ValueError`` rather than an instant ``DeadlineExceededError``.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"{what} must be a number of seconds or None, not {type(timeout).__name__}")
    seconds = float(timeout)
    if not seconds > 0:  # also refuses NaN
        raise ValueError(f"{what} must be > 0 seconds, or None, not {timeout!r}")
    return seconds


class ClientBase:
    """What every feature mixin (``kv.py``, ``watch/``, ``lease/``, ``concurrency.py``,
    ``mirror.py``) may use of a client; ``client.Client`` fills it in. The mixins hold no state:
    a namespace view is the same caller under another key space.

    - ``_caller``: the ``_caller.Caller`` that owns the calls, the connection, the nursery and
      the state shared by the client and its views (watch stream, kept leases, auth token).
    - ``_keyspace``: the ``_keys.KeySpace`` of the client's keys (its namespace, if any): every
      key going out is made by it, every key coming back is given back through it.
    - ``_unary``, ``_stream``: the caller's ``unary`` and ``stream`` (see there), bound once.
    """

    _caller: Caller
    _keyspace: KeySpace = ROOT
    _unary: Unary
    _stream: OpenStream


class Unary(Protocol):
    """The signature of ``Caller.unary``."""

    def __call__(
        self,
        rpc: Rpc[M],
        request: Message,
        *,
        timeout: float | None = None,
        repeatable: bool | None = None,
        endpoint: str | None = None,
        retries: int | None = None,
    ) -> Coroutine[Any, Any, M]: ...


class OpenStream(Protocol):
    """The signature of ``Caller.stream``."""

    def __call__(
        self, rpc: Rpc[M], *, timeout: float | None = None
    ) -> AsyncContextManager[EtcdStream[M]]: ...
