"""``get``, ``put``, ``del``, ``txn``, ``compaction`` and ``watch``."""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn

from puregrpc_etcd._cli import stdin
from puregrpc_etcd._cli.args import EXIT_ERROR, UsageError, arg_bytes
from puregrpc_etcd._cli.kv_options import (
    add_delete_flags,
    add_get_flags,
    add_put_flags,
    delete_options,
    get_options,
    put_options,
)
from puregrpc_etcd._cli.replies import (
    current_header,
    delete_json,
    events_json,
    get_json,
    print_delete,
    print_events,
    print_get,
    print_put,
    print_txn,
    put_json,
    txn_json,
)
from puregrpc_etcd.types import ResponseHeader

if TYPE_CHECKING:
    import trio

    from puregrpc_etcd._cli.args import CommandTree
    from puregrpc_etcd._cli.session import Context
    from puregrpc_etcd._cli.txn_input import read_txn
    from puregrpc_etcd.client import Client
    from puregrpc_etcd.types import GetResponse
    from puregrpc_etcd.watch import Event, Watcher
else:
    from puregrpc_etcd._cli import OnFirstUse, trio  # imported on first use

    read_txn = OnFirstUse("puregrpc_etcd._cli.txn_input", "read_txn")  # protobuf, via txn


async def get_command(ctx: Context, args: argparse.Namespace) -> int:
    options = get_options(args)
    if args.print_value_only and ctx.write_out != "simple":
        raise UsageError("print-value-only is only for `--write-out=simple`")

    def print_simple(reply: GetResponse) -> None:
        if args.count_only:
            ctx.out.line(str(reply.count))
        else:
            print_get(ctx.out, reply, value_only=args.print_value_only)

    return await ctx.show(lambda c: c.get(args.key, **options), get_json, print_simple)


async def put_command(ctx: Context, args: argparse.Namespace) -> int:
    ctx.require_format("simple", "json")
    value, options = put_options(args, stdin_allowed=True)
    return await ctx.show(
        lambda c: c.put(args.key, value, **options), put_json, partial(print_put, ctx.out)
    )


async def delete_command(ctx: Context, args: argparse.Namespace) -> int:
    options = delete_options(args)
    return await ctx.show(
        lambda c: c.delete(args.key, **options), delete_json, partial(print_delete, ctx.out)
    )


async def txn_command(ctx: Context, args: argparse.Namespace) -> int:
    ctx.require_format("simple", "json")
    with stdin.text_input() as stream:
        compares, success, failure = read_txn(stream, interactive=args.interactive)
    return await ctx.show(
        lambda c: c.txn(compares, success, failure), txn_json, partial(print_txn, ctx.out)
    )


async def compaction_command(ctx: Context, args: argparse.Namespace) -> int:
    if args.revision <= 0:
        raise UsageError("compaction needs a revision above 0")
    async with ctx.connect() as client:
        await client.compact(args.revision, physical=args.physical)
    ctx.out.line(f"compacted revision {args.revision}")
    return 0


async def watch_command(ctx: Context, args: argparse.Namespace) -> int:
    """Print events until interrupted; with a command after ``--``, run it for each event."""
    ctx.require_format("simple", "json")
    if args.interactive:
        from puregrpc_etcd._cli.watch_interactive import watch_interactively

        return await watch_interactively(ctx, args)
    if args.key is None:
        raise UsageError("watch needs a key (or a prefix with --prefix)")
    options = watch_options(args)
    async with ctx.connect() as client:
        # A unary call first: an unreachable endpoint then fails as for the other commands
        # (exit 2 within the dial timeout), where a watch stream would keep reconnecting.
        header = await current_header(client)
        try:
            await print_watch(
                ctx, client, header, args.key, options, exec_command=args.exec_command
            )
        except CommandFailed:
            return EXIT_ERROR
    return 0


def watch_options(args: argparse.Namespace) -> dict[str, Any]:
    """``client.watch``'s options from watch's flags; UsageError for a range_end with --prefix."""
    options: dict[str, Any] = {
        "prefix": args.prefix,
        "prev_kv": args.prev_kv,
        "progress_notify": args.progress_notify,
        "start_revision": args.rev,
    }
    if args.range_end is not None:
        if args.prefix:
            raise UsageError("`range_end` and `--prefix` are mutually exclusive")
        options["range_end"] = args.range_end
    return options


async def print_watch(
    ctx: Context,
    client: Client,
    header: ResponseHeader,
    key: bytes,
    options: dict[str, Any],
    *,
    exec_command: list[str],
    opened: list[Watcher] | None = None,
) -> None:
    """Print one watch's events until cancelled (running ``exec_command`` for each); the
    watcher is added to ``opened`` while it runs."""
    async with client.watch(key, **options) as watcher:
        if opened is not None:
            opened.append(watcher)
        batches = _Batches(watcher)
        while True:
            events = await batches.next()
            header = _with_revision(header, events[-1].kv.mod_revision)
            if ctx.write_out == "json":
                ctx.out.json(events_json(header, events))
            else:
                print_events(ctx.out, events)
            if exec_command:
                await _run_for_events(exec_command, events, header.revision)


class _Batches:
    """A watcher's events one revision at a time: what a live watch gets in one reply."""

    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher
        self._next: Event | None = None  # read ahead: the first event of the next revision

    async def next(self) -> list[Event]:
        """The next event and the received ones of its revision."""
        first, self._next = self._next, None
        events = [first or await self._watcher.__anext__()]
        while self._watcher.pending:
            event = await self._watcher.__anext__()
            if event.kv.mod_revision != events[0].kv.mod_revision:
                self._next = event
                break
            events.append(event)
        return events


def _with_revision(header: ResponseHeader, revision: int) -> ResponseHeader:
    return ResponseHeader(header.cluster_id, header.member_id, revision, header.raft_term)


class CommandFailed(Exception):
    """The command run for an event failed: etcdctl then stops watching and exits 1."""


async def _run_for_events(command: list[str], events: list[Event], revision: int) -> None:
    """Run ``command`` for each event with etcdctl's variables, quoted as Go's ``%q`` quotes
    (``ETCD_WATCH_EVENT_TYPE="PUT"``); a command that fails or cannot start ends the watch as
    etcdctl's does: ``command [...] error (exit status N)`` on stderr, exit 1."""
    for event in events:
        env = dict(os.environ)
        env.update(
            ETCD_WATCH_REVISION=str(revision),
            ETCD_WATCH_EVENT_TYPE=go_quote(b"DELETE" if event.type == "delete" else b"PUT"),
            ETCD_WATCH_KEY=go_quote(event.kv.key),
            ETCD_WATCH_VALUE=go_quote(event.kv.value),
        )
        try:
            done = await trio.run_process(command, check=False, env=env, stdin=None)
        except OSError as exc:
            _command_failed(command, go_exec_error(command[0], exc))
        if done.returncode > 0:
            _command_failed(command, f"exit status {done.returncode}")
        if done.returncode < 0:
            _command_failed(command, f"signal: {_GO_SIGNALS.get(-done.returncode, 'killed')}")


def go_exec_error(name: str, exc: OSError) -> str:
    """Why a command could not start, in Go's ``os/exec`` words (etcdctl's)."""
    if isinstance(exc, FileNotFoundError) and "/" not in name:
        return f'exec: "{name}": executable file not found in $PATH'
    return f"fork/exec {name}: {(exc.strerror or str(exc)).lower()}"


_GO_SIGNALS = {2: "interrupt", 9: "killed", 15: "terminated", 13: "broken pipe", 6: "aborted"}


def _command_failed(command: list[str], why: str) -> NoReturn:
    words = " ".join(go_quote(os.fsencode(word)) for word in command)
    print(f"command [{words}] error ({why})", file=sys.stderr)
    sys.stderr.flush()
    raise CommandFailed


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v", '"': '\\"', "\\": "\\\\"}  # fmt: skip


def go_quote(data: bytes) -> str:
    """``data`` as Go's ``%q`` prints a byte string: double quotes, printable characters
    kept, ``\\n``-style escapes, ``\\xNN`` for invalid UTF-8 and control bytes."""
    out = ['"']
    for char in data.decode("utf-8", "surrogateescape"):
        code = ord(char)
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable():
            out.append(char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def register(tree: CommandTree) -> None:
    add_get_flags(tree.command("get", "Gets the key or a range of keys", get_command))
    add_put_flags(tree.command("put", "Puts the given key into the store", put_command))
    add_delete_flags(tree.command("del", "Removes the key or a range of keys", delete_command))
    txn = tree.command(
        "txn", "Runs compares and operations read from stdin atomically", txn_command
    )
    txn.add_argument("-i", "--interactive", action="store_true", help="prompt for each part")
    compaction = tree.command(
        "compaction", "Compacts the event history in etcd", compaction_command
    )
    compaction.add_argument("revision", type=int)
    compaction.add_argument(
        "--physical", action="store_true", help="wait until old revisions are removed on disk"
    )
    watch = tree.command("watch", "Watches events on keys or prefixes", watch_command)
    add_watch_flags(watch)
    # The command run for each event (after "--") is cut from the line before parsing
    # (split_exec_command), since argparse would take its first word as range_end.
    watch.set_defaults(streaming=True, exec_command=[])
    watch.add_argument(
        "-i", "--interactive", action="store_true", help="read watch requests from stdin"
    )


def add_watch_flags(watch: argparse.ArgumentParser) -> None:
    watch.add_argument("key", type=arg_bytes, nargs="?")
    watch.add_argument("range_end", type=arg_bytes, nargs="?")
    watch.add_argument("--prefix", action="store_true", help="watch keys with this prefix")
    watch.add_argument("--prev-kv", action="store_true", help="include the previous key-value")
    watch.add_argument("--rev", type=int, default=0, help="revision to start watching from")
    watch.add_argument(
        "--progress-notify", action="store_true", help="ask for progress notifications"
    )
