"""python-etcd3's transaction builders: compares (``Value``, ``Version``, ``Create``, ``Mod``,
with ``==``, ``!=``, ``<``, ``>``) and operations (``Put``, ``Get``, ``Delete``, ``Txn``).

``build_message()`` gives the protobuf ``Compare`` as python-etcd3 does; the client turns each
builder into the library's own ``Compare``/``Op`` (``native_compare``, ``native_op``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from puregrpc_etcd.txn import Compare, CompareTarget, Op

from . import etcdrpc, utils

__all__ = [
    "BaseCompare",
    "Create",
    "Delete",
    "Get",
    "Mod",
    "Put",
    "Txn",
    "Value",
    "Version",
    "native_compare",
    "native_op",
]

_OPERATORS = {
    etcdrpc.Compare.EQUAL: "==",
    etcdrpc.Compare.NOT_EQUAL: "!=",
    etcdrpc.Compare.LESS: "<",
    etcdrpc.Compare.GREATER: ">",
}


class BaseCompare:
    _target: int = etcdrpc.Compare.VALUE

    def __init__(self, key: Any, range_end: Any = None) -> None:
        self.key = key
        self.range_end = range_end
        self.value: Any = None
        self.op: Optional[int] = None

    # Comparisons build the compare (python-etcd3's DSL), they do not compare.
    def __eq__(self, other: object) -> BaseCompare:  # type: ignore[override]
        self.value = other
        self.op = etcdrpc.Compare.EQUAL
        return self

    def __ne__(self, other: object) -> BaseCompare:  # type: ignore[override]
        self.value = other
        self.op = etcdrpc.Compare.NOT_EQUAL
        return self

    def __lt__(self, other: object) -> BaseCompare:
        self.value = other
        self.op = etcdrpc.Compare.LESS
        return self

    def __gt__(self, other: object) -> BaseCompare:
        self.value = other
        self.op = etcdrpc.Compare.GREATER
        return self

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        keys = self.key if self.range_end is None else f"[{self.key}, {self.range_end})"
        return f"{self.__class__}: {keys} {_OPERATORS.get(self.op)} '{self.value}'"  # type: ignore[call-overload]

    def build_message(self) -> etcdrpc.Compare:
        compare = etcdrpc.Compare()
        compare.key = utils.to_bytes(self.key)
        if self.range_end is not None:
            compare.range_end = utils.to_bytes(self.range_end)
        if self.op is None:
            raise ValueError("op must be one of =, !=, < or >")
        compare.result = self.op  # type: ignore[assignment]
        self.build_compare(compare)
        return compare

    def build_compare(self, compare: etcdrpc.Compare) -> None:
        raise NotImplementedError

    def _operand(self) -> Any:
        return int(self.value)


class Value(BaseCompare):
    def build_compare(self, compare: etcdrpc.Compare) -> None:
        compare.target = etcdrpc.Compare.VALUE
        compare.value = utils.to_bytes(self.value)

    def _operand(self) -> Any:
        return utils.to_bytes(self.value)


class Version(BaseCompare):
    def build_compare(self, compare: etcdrpc.Compare) -> None:
        compare.target = etcdrpc.Compare.VERSION
        compare.version = int(self.value)


class Create(BaseCompare):
    def build_compare(self, compare: etcdrpc.Compare) -> None:
        compare.target = etcdrpc.Compare.CREATE
        compare.create_revision = int(self.value)


class Mod(BaseCompare):
    def build_compare(self, compare: etcdrpc.Compare) -> None:
        compare.target = etcdrpc.Compare.MOD
        compare.mod_revision = int(self.value)


class Put:
    def __init__(self, key: Any, value: Any, lease: Any = None, prev_kv: bool = False) -> None:
        self.key = key
        self.value = value
        self.lease = lease
        self.prev_kv = prev_kv


class Get:
    def __init__(self, key: Any, range_end: Any = None) -> None:
        self.key = key
        self.range_end = range_end


class Delete:
    def __init__(self, key: Any, range_end: Any = None, prev_kv: bool = False) -> None:
        self.key = key
        self.range_end = range_end
        self.prev_kv = prev_kv


class Txn:
    def __init__(
        self,
        compare: Sequence[BaseCompare],
        success: Optional[Sequence[Any]] = None,
        failure: Optional[Sequence[Any]] = None,
    ) -> None:
        self.compare = compare
        self.success = success
        self.failure = failure


_TARGETS: dict[type[BaseCompare], Callable[..., CompareTarget]] = {
    Value: Compare.value,
    Version: Compare.version,
    Create: Compare.create_revision,
    Mod: Compare.mod_revision,
}


def native_compare(compare: BaseCompare) -> Compare:
    """The library's ``Compare`` for one of python-etcd3's compares."""
    if compare.op is None:
        raise ValueError("op must be one of =, !=, < or >")
    factory = next(f for cls, f in _TARGETS.items() if isinstance(compare, cls))
    range_end = None if compare.range_end is None else utils.to_bytes(compare.range_end)
    target = factory(utils.to_bytes(compare.key), range_end=range_end)
    operand = compare._operand()
    result: Compare
    if compare.op == etcdrpc.Compare.EQUAL:
        result = target == operand
    elif compare.op == etcdrpc.Compare.NOT_EQUAL:
        result = target != operand
    elif compare.op == etcdrpc.Compare.LESS:
        result = target < operand
    else:
        result = target > operand
    return result


def native_op(op: object) -> Op:
    """The library's ``Op`` for one of python-etcd3's operations."""
    if isinstance(op, Put):
        return Op.put(
            utils.to_bytes(op.key),
            utils.to_bytes(op.value),
            lease=utils.lease_to_id(op.lease),
            prev_kv=bool(op.prev_kv),
        )
    if isinstance(op, Get):
        return Op.get(utils.to_bytes(op.key), range_end=_opt_bytes(op.range_end))
    if isinstance(op, Delete):
        return Op.delete(
            utils.to_bytes(op.key), range_end=_opt_bytes(op.range_end), prev_kv=bool(op.prev_kv)
        )
    if isinstance(op, Txn):
        return Op.txn(
            [native_compare(c) for c in op.compare],
            native_ops(op.success),
            native_ops(op.failure),
        )
    raise TypeError(f"Unknown request class {op.__class__}")


def native_ops(ops: Optional[Sequence[Any]]) -> list[Op]:
    """``native_op`` of each; None is no operation (anything else not iterable: TypeError)."""
    if ops is None:
        return []
    return [native_op(op) for op in ops]


def _opt_bytes(value: Any) -> Optional[bytes]:
    return None if value is None else utils.to_bytes(value)
