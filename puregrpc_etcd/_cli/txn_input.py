"""The ``txn`` command's input, in etcdctl's syntax: compares, a blank line, success operations,
a blank line, failure operations, a blank line (``etcdctl/README.md``, "TXN").

A compare is ``target("key") op "value"`` (targets ``value``/``val``, ``version``/``ver``,
``create``/``c``, ``mod``/``m``, ``lease``; ops ``=``, ``!=``, ``<``, ``>``; strings in Go's
quoting); an operation is a ``get``, ``put`` or ``del`` command line with its options.
"""

from __future__ import annotations

import argparse
import re
from typing import IO, Callable, TypeVar

from puregrpc_etcd._cli.args import EXIT_INVALID_INPUT, Parser, UsageError
from puregrpc_etcd._cli.kv_options import (
    add_delete_flags,
    add_get_flags,
    add_put_flags,
    delete_options,
    get_options,
    put_options,
)
from puregrpc_etcd.txn import Compare, CompareTarget, Op

T = TypeVar("T")

_GO_STRING = r'"(?:[^"\\]|\\.)*"|`[^`]*`'
_COMPARE = re.compile(
    rf"^(?P<target>\w+)\((?P<key>{_GO_STRING})\)\s*(?P<op>\S+)\s+(?P<value>{_GO_STRING})$"
)
# etcdctl's argify: double-quoted (Go escapes), single-quoted (raw) or bare words.
_WORD = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^'\"\s]\S*[^'\"\s]?")
_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", '"': '"', "'": "'",
}  # fmt: skip

_TARGETS: dict[str, Callable[[bytes], CompareTarget]] = {
    "value": Compare.value,
    "val": Compare.value,
    "version": Compare.version,
    "ver": Compare.version,
    "create": Compare.create_revision,
    "c": Compare.create_revision,
    "mod": Compare.mod_revision,
    "m": Compare.mod_revision,
    "lease": Compare.lease,
}


def go_unquote(text: str) -> str:
    """The string a Go quoted literal (``"..."`` with escapes, or a raw ```...```) stands for."""
    if len(text) >= 2 and text[0] == text[-1] == "`":
        return text[1:-1]
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ValueError(f"not a quoted string: {text}")
    body = text[1:-1]
    result: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            result.append(char)
            index += 1
            continue
        if index + 1 >= len(body):
            raise ValueError(f"bad escape at the end of {text}")
        escape = body[index + 1]
        if escape in _SIMPLE_ESCAPES:
            result.append(_SIMPLE_ESCAPES[escape])
            index += 2
        elif escape in "xuU":
            digits = {"x": 2, "u": 4, "U": 8}[escape]
            code = body[index + 2 : index + 2 + digits]
            if len(code) != digits:
                raise ValueError(f"bad \\{escape} escape in {text}")
            # \x gives a byte; keep it as the surrogate-escaped character of that byte.
            value = int(code, 16)
            result.append(chr(0xDC00 + value) if escape == "x" and value > 0x7F else chr(value))
            index += 2 + digits
        elif escape in "01234567":
            code = body[index + 1 : index + 4]
            value = int(code, 8)
            result.append(chr(0xDC00 + value) if value > 0x7F else chr(value))
            index += 4
        else:
            raise ValueError(f"unknown escape \\{escape} in {text}")
    return "".join(result)


def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def argify(line: str) -> list[str]:
    """Split an operation line into words as etcdctl does."""
    words = []
    for word in _WORD.findall(line):
        if word.startswith("'"):
            words.append(word[1:-1])
        elif word.startswith('"'):
            words.append(go_unquote(word))
        else:
            words.append(word)
    return words


def parse_compare(line: str) -> Compare:
    match = _COMPARE.match(line)
    if match is None:
        raise UsageError(f"malformed comparison: {line}", EXIT_INVALID_INPUT)
    target_name = match["target"]
    target_of = _TARGETS.get(target_name)
    if target_of is None:
        raise UsageError(
            f"malformed comparison: {line} (unknown target {target_name})", EXIT_INVALID_INPUT
        )
    try:
        key = _to_bytes(go_unquote(match["key"]))
        raw_value = go_unquote(match["value"])
        operand: bytes | int
        if target_of is Compare.value:
            operand = _to_bytes(raw_value)
        elif target_name == "lease":
            operand = int(raw_value, 16)
        else:
            operand = int(raw_value, 10)
        target = target_of(key)
        op = match["op"]
        if op in ("=", "=="):
            return target == operand
        if op == "!=":
            return target != operand
        if op == "<":
            return target < operand
        if op == ">":
            return target > operand
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"invalid txn compare request: {line} ({exc})", EXIT_INVALID_INPUT
        ) from None
    raise UsageError(f"malformed comparison: {line} (unknown operator {op})", EXIT_INVALID_INPUT)


def _op_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="txn", add_help=False)
    kinds = parser.add_subparsers(dest="kind")
    add_get_flags(kinds.add_parser("get", add_help=False))
    add_put_flags(kinds.add_parser("put", add_help=False))
    add_delete_flags(kinds.add_parser("del", add_help=False))
    return parser


def parse_op(line: str) -> Op:
    words = argify(line)
    if len(words) < 2:
        raise UsageError(f"invalid txn request: {line}", EXIT_INVALID_INPUT)
    try:
        args = _op_parser().parse_args(words)
        if args.kind == "get":
            return Op.get(args.key, **get_options(args))
        if args.kind == "put":
            value, options = put_options(args, stdin_allowed=False)
            return Op.put(args.key, value, **options)
        return Op.delete(args.key, **delete_options(args))
    except (UsageError, ValueError, TypeError):
        raise UsageError(f"invalid txn request: {line}", EXIT_INVALID_INPUT) from None


def _read_block(stream: IO[str], prompt: str | None, parse: Callable[[str], T]) -> list[T]:
    """Parsed lines up to an empty line. As etcdctl, input that ends before that line (even
    an empty stdin) is an error, never a transaction: a truncated input must not commit."""
    if prompt is not None:
        print(prompt, flush=True)
    items: list[T] = []
    while True:
        try:
            raw = stream.readline()
        except (OSError, ValueError) as exc:
            raise UsageError(str(exc), EXIT_INVALID_INPUT) from None
        if not raw.endswith("\n"):
            raise UsageError("EOF", EXIT_INVALID_INPUT)
        line = raw.strip()
        if not line:
            return items
        items.append(parse(line))


def read_txn(
    stream: IO[str], *, interactive: bool = False
) -> tuple[list[Compare], list[Op], list[Op]]:
    """Read a whole txn; ``interactive`` prints etcdctl's prompts before each part."""
    compares = _read_block(stream, "compares:" if interactive else None, parse_compare)
    success = _read_block(
        stream, "success requests (get, put, del):" if interactive else None, parse_op
    )
    failure = _read_block(
        stream, "failure requests (get, put, del):" if interactive else None, parse_op
    )
    return compares, success, failure
