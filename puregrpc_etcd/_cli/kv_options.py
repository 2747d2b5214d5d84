"""The options of ``get``, ``put`` and ``del``, shared by the commands and by ``txn``'s lines.

Each ``*_options`` function turns parsed arguments into the keyword arguments of the client
call (``client.get``) or of the txn builder (``Op.get``): they take the same ones.
"""

from __future__ import annotations

import argparse
from typing import Any

from puregrpc_etcd._cli import stdin
from puregrpc_etcd._cli.args import UsageError, arg_bytes, hex_id

_SORT_TARGETS = {
    "CREATE": "create",
    "KEY": "key",
    "MODIFY": "mod",
    "VALUE": "value",
    "VERSION": "version",
}
_SORT_ORDERS = {"ASCEND": "ascend", "DESCEND": "descend"}


def add_get_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", type=arg_bytes)
    parser.add_argument("range_end", type=arg_bytes, nargs="?")
    parser.add_argument("--prefix", action="store_true", help="get keys with this prefix")
    parser.add_argument(
        "--from-key", action="store_true", help="get every key from this key on (byte order)"
    )
    parser.add_argument("--limit", type=int, default=0, help="most results to return")
    parser.add_argument("--rev", type=int, default=0, help="read at this revision")
    parser.add_argument("--order", type=str.upper, choices=sorted(_SORT_ORDERS), default=None)
    parser.add_argument("--sort-by", type=str.upper, choices=sorted(_SORT_TARGETS), default=None)
    parser.add_argument(
        "--consistency",
        choices=("l", "s"),
        default="l",
        help="linearizable (l) or serializable (s)",
    )
    parser.add_argument("--keys-only", action="store_true", help="get only the keys")
    parser.add_argument("--count-only", action="store_true", help="get only the count")
    parser.add_argument(
        "--print-value-only", action="store_true", help="print only values (simple output)"
    )


def _range_args(args: argparse.Namespace, what: str) -> dict[str, Any]:
    if args.range_end is not None and (args.prefix or args.from_key):
        raise UsageError(f"{what}: a range_end cannot go with --prefix or --from-key")
    if args.prefix and args.from_key:
        raise UsageError(f"{what}: --prefix and --from-key cannot be used together")
    options: dict[str, Any] = {"prefix": args.prefix, "from_key": args.from_key}
    if args.range_end is not None:
        options["range_end"] = args.range_end
    return options


def get_options(args: argparse.Namespace) -> dict[str, Any]:
    options = _range_args(args, "get")
    if args.limit < 0 or args.rev < 0:
        raise UsageError("get: --limit and --rev must not be negative")
    sort_target = args.sort_by
    sort_order = args.order
    if sort_order and not sort_target:
        sort_target = "KEY"
    options.update(
        limit=args.limit,
        revision=args.rev,
        serializable=args.consistency == "s",
        keys_only=args.keys_only,
        count_only=args.count_only,
    )
    if sort_target:
        # No --order is no order, as etcdctl sends it: etcd then limits before it sorts.
        options.update(
            sort_target=_SORT_TARGETS[sort_target],
            sort_order=_SORT_ORDERS[sort_order] if sort_order else "none",
        )
    return options


def add_put_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", type=arg_bytes)
    parser.add_argument("value", type=arg_bytes, nargs="?")
    parser.add_argument("--lease", type=hex_id, default=0, help="lease ID (hex) for the key")
    parser.add_argument("--prev-kv", action="store_true", help="return the previous key-value")
    parser.add_argument("--ignore-value", action="store_true", help="keep the key's current value")
    parser.add_argument("--ignore-lease", action="store_true", help="keep the key's current lease")


def put_options(args: argparse.Namespace, *, stdin_allowed: bool) -> tuple[bytes, dict[str, Any]]:
    """The value and options of a put; the value comes from stdin when not given, and an empty
    or closed stdin is refused as etcdctl does, rather than emptying the key."""
    value = args.value
    if args.ignore_value:
        if value is not None:
            raise UsageError("put: a value cannot go with --ignore-value")
        value = b""
    elif value is None:
        value = stdin.read_all() if stdin_allowed else b""
        if not value:
            raise UsageError("put command needs 1 argument and input from stdin or 2 arguments")
    if args.ignore_lease and args.lease:
        raise UsageError("put: --lease cannot go with --ignore-lease")
    options = {
        "lease": args.lease,
        "prev_kv": args.prev_kv,
        "ignore_value": args.ignore_value,
        "ignore_lease": args.ignore_lease,
    }
    return value, options


def add_delete_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", type=arg_bytes)
    parser.add_argument("range_end", type=arg_bytes, nargs="?")
    parser.add_argument("--prefix", action="store_true", help="delete keys with this prefix")
    parser.add_argument("--from-key", action="store_true", help="delete every key from this key on")
    parser.add_argument("--prev-kv", action="store_true", help="return the deleted key-values")
    parser.add_argument(
        "--range", action="store_true", help="delete range of keys (no effect, as in etcdctl)"
    )


def delete_options(args: argparse.Namespace) -> dict[str, Any]:
    options = _range_args(args, "del")
    options["prev_kv"] = args.prev_kv
    return options
