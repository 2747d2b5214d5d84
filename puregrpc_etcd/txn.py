"""Builders for transactions: ``Compare.value(key) == b"v"`` and ``Op.put(key, value)``.

Both check their arguments when built, so a bad txn fails before any I/O; they are turned into
protobuf at send time, when the client's namespace is known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, NoReturn

from puregrpc_etcd import _kv_requests
from puregrpc_etcd._keys import ROOT, KeyLike, KeySpace, to_bytes
from puregrpc_etcd._proto import rpc_pb2

if TYPE_CHECKING:
    from google.protobuf.message import Message

__all__ = ["Compare", "CompareTarget", "Op"]

_TARGETS = {"version": 0, "create_revision": 1, "mod_revision": 2, "value": 3, "lease": 4}
_RESULTS = {"==": 0, ">": 1, "<": 2, "!=": 3}


class CompareTarget:
    """One side of a comparison: a field of a key (or of every key in a range).

    Made by ``Compare.value(key)``, ``Compare.version(key)``, ... and completed with ``==``,
    ``!=``, ``<`` or ``>`` into a ``Compare``.
    """

    __slots__ = ("_key", "_prefix", "_range_end", "_target")

    def __init__(self, target: str, key: object, prefix: bool, range_end: object) -> None:
        ROOT.range(key, prefix=prefix, range_end=range_end)
        self._target = target
        self._key = to_bytes(key)
        self._prefix = prefix
        self._range_end = None if range_end is None else to_bytes(range_end, "range_end")

    def _compare(self, result: str, operand: object) -> Compare:
        if self._target == "value":
            checked: bytes | int = to_bytes(operand, "compared value")
        else:
            checked = _kv_requests.check_int(operand, f"compared {self._target}")
        return Compare(self, result, checked)

    def __eq__(self, other: object) -> Compare:  # type: ignore[override]
        return self._compare("==", other)

    def __ne__(self, other: object) -> Compare:  # type: ignore[override]
        return self._compare("!=", other)

    def __lt__(self, other: object) -> Compare:
        return self._compare("<", other)

    def __gt__(self, other: object) -> Compare:
        return self._compare(">", other)

    def __le__(self, other: object) -> NoReturn:
        raise TypeError("etcd compares with ==, !=, < and > only")

    __ge__ = __le__
    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> NoReturn:
        raise TypeError("complete the comparison, e.g. Compare.version(key) > 0")

    def __repr__(self) -> str:
        options = ""
        if self._prefix:
            options = ", prefix=True"
        elif self._range_end is not None:
            options = f", range_end={self._range_end!r}"
        return f"Compare.{self._target}({self._key!r}{options})"


class Compare:
    """A condition of a txn; build it from one of the static methods and an operator.

    ``Compare.value(key) == b"v"``, ``Compare.version(key) > 3``,
    ``Compare.create_revision(key) == 0`` (the key does not exist),
    ``Compare.mod_revision(key) < rev``, ``Compare.lease(key) == lease_id``. With ``prefix=True``
    or ``range_end=``, every key in the range must satisfy it.
    """

    __slots__ = ("operand", "result", "target")

    target: CompareTarget
    result: str
    operand: bytes | int

    def __init__(self, target: CompareTarget, result: str, operand: bytes | int) -> None:
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "result", result)
        object.__setattr__(self, "operand", operand)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Compare is immutable")

    @staticmethod
    def value(
        key: KeyLike, *, prefix: bool = False, range_end: KeyLike | None = None
    ) -> CompareTarget:
        return CompareTarget("value", key, prefix, range_end)

    @staticmethod
    def version(
        key: KeyLike, *, prefix: bool = False, range_end: KeyLike | None = None
    ) -> CompareTarget:
        return CompareTarget("version", key, prefix, range_end)

    @staticmethod
    def create_revision(
        key: KeyLike, *, prefix: bool = False, range_end: KeyLike | None = None
    ) -> CompareTarget:
        return CompareTarget("create_revision", key, prefix, range_end)

    @staticmethod
    def mod_revision(
        key: KeyLike, *, prefix: bool = False, range_end: KeyLike | None = None
    ) -> CompareTarget:
        return CompareTarget("mod_revision", key, prefix, range_end)

    @staticmethod
    def lease(
        key: KeyLike, *, prefix: bool = False, range_end: KeyLike | None = None
    ) -> CompareTarget:
        return CompareTarget("lease", key, prefix, range_end)

    def _to_pb(self, keys: KeySpace) -> rpc_pb2.Compare:
        target = self.target
        start, end = keys.range(target._key, prefix=target._prefix, range_end=target._range_end)
        pb = rpc_pb2.Compare(
            result=_RESULTS[self.result],  # type: ignore[arg-type]
            target=_TARGETS[target._target],  # type: ignore[arg-type]
            key=start,
            range_end=end,
        )
        setattr(pb, target._target, self.operand)
        return pb

    def __repr__(self) -> str:
        return f"{self.target!r} {self.result} {self.operand!r}"


class Op:
    """One operation of a txn branch: ``Op.get``, ``Op.put``, ``Op.delete`` or ``Op.txn``.

    They take the same options as ``client.get``, ``client.put`` and ``client.delete``.
    """

    __slots__ = ("_build", "_plain", "kind")

    kind: str
    _build: Callable[[KeySpace], rpc_pb2.RequestOp]
    _plain: rpc_pb2.RequestOp

    def __init__(self, kind: str, build: Callable[[KeySpace], rpc_pb2.RequestOp]) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "_build", build)
        # Building once now, outside any namespace, checks the arguments before any I/O; a
        # namespaced client builds it again in its key space.
        object.__setattr__(self, "_plain", build(ROOT))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Op is immutable")

    @staticmethod
    def get(key: KeyLike, **options: Any) -> Op:
        return Op(
            "get", lambda keys: _op(request_range=_kv_requests.range_request(keys, key, **options))
        )

    @staticmethod
    def put(key: KeyLike, value: KeyLike | None, **options: Any) -> Op:
        return Op(
            "put",
            lambda keys: _op(request_put=_kv_requests.put_request(keys, key, value, **options)),
        )

    @staticmethod
    def delete(key: KeyLike, **options: Any) -> Op:
        return Op(
            "delete",
            lambda keys: _op(
                request_delete_range=_kv_requests.delete_request(keys, key, **options)
            ),
        )

    @staticmethod
    def txn(
        compare: Iterable[Compare] = (), success: Iterable[Op] = (), failure: Iterable[Op] = ()
    ) -> Op:
        compare, success, failure = tuple(compare), tuple(success), tuple(failure)
        return Op(
            "txn",
            lambda keys: _op(request_txn=_kv_requests.txn_request(keys, compare, success, failure)),
        )

    def _to_pb(self, keys: KeySpace) -> rpc_pb2.RequestOp:
        if keys.prefix:
            return self._build(keys)
        return self._plain

    def __repr__(self) -> str:
        return f"Op.{self.kind}({_describe(self._plain)})"


def _op(**request: Message) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(**request)  # type: ignore[arg-type]


def _describe(op: rpc_pb2.RequestOp) -> str:
    kind = op.WhichOneof("request")
    if kind is None:
        return ""
    inner = getattr(op, kind)
    if kind == "request_txn":
        return f"{len(inner.compare)} compares, {len(inner.success)}/{len(inner.failure)} ops"
    return repr(inner.key)
