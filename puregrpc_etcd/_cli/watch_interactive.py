"""``watch -i``: watch requests read from standard input, one a line, as etcdctl reads them.

``watch [--prefix] [--prev-kv] [--rev N] [--progress-notify] KEY [RANGE_END] [-- CMD ...]``
starts a watch that prints alongside the others; ``progress`` asks the server for a progress
notification. A line that is not a request is reported on stderr and skipped; flags that do not
parse end the command (128), and so does the end of the input (3, ``error reading watch request
line: EOF``), as with etcdctl.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from functools import partial
from typing import TYPE_CHECKING

import trio

from puregrpc_etcd._cli.args import EXIT_ERROR, EXIT_INVALID_INPUT, Parser, UsageError
from puregrpc_etcd._cli.kv_commands import (
    CommandFailed,
    add_watch_flags,
    print_watch,
    watch_options,
)
from puregrpc_etcd._cli.replies import current_header
from puregrpc_etcd._exception_groups import unwrap_group

if TYPE_CHECKING:
    from puregrpc_etcd._cli.session import Context
    from puregrpc_etcd.client import Client
    from puregrpc_etcd.types import ResponseHeader
    from puregrpc_etcd.watch import Watcher


def _read_request_line() -> str | None:
    """One whole line of standard input without its end; None at the end (or when closed)."""
    stdin = sys.stdin
    if stdin is None:
        return None
    try:
        line = stdin.readline()
    except (OSError, ValueError):
        return None
    return line[:-1] if line.endswith("\n") else None


def _invalid(line: str, why: str) -> None:
    print(f"Invalid command {line} ({why})", file=sys.stderr)
    sys.stderr.flush()


async def watch_interactively(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.connect() as client:
        header = await current_header(client)
        try:
            await _serve_requests(ctx, client, header)
        except BaseException as exc:
            if isinstance(unwrap_group(exc), CommandFailed):
                return EXIT_ERROR
            raise
    return 0


async def _serve_requests(ctx: Context, client: Client, header: ResponseHeader) -> None:
    async with trio.open_nursery() as nursery:
        session = _Session(ctx, client, header, nursery)
        while True:
            line = await trio.to_thread.run_sync(_read_request_line, abandon_on_cancel=True)
            if line is None:
                raise UsageError("error reading watch request line: EOF", EXIT_INVALID_INPUT)
            await session.request(line)


class _Session:
    """The watches started from standard input, printing side by side."""

    def __init__(
        self, ctx: Context, client: Client, header: ResponseHeader, nursery: trio.Nursery
    ) -> None:
        self.ctx, self.client, self.header, self.nursery = ctx, client, header, nursery
        self.watchers: list[Watcher] = []
        self.parser = Parser(prog="watch", add_help=False)
        add_watch_flags(self.parser)

    async def request(self, line: str) -> None:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            _invalid(line, str(exc))
            return
        if not words:
            print(f"Invalid command: {line} (watch and progress supported)", file=sys.stderr)
            return
        if words[0] == "progress":
            # The notification moves the watchers' revisions; it is not printed (etcdctl
            # prints "progress notify: REV"), as the library's watchers hand out events only.
            if self.watchers:
                await self.watchers[0].request_progress()
            return
        if words[0] != "watch":
            _invalid(line, "only support watch")
            return
        if len(words) < 2:
            _invalid(line, "command type or key is not provided")
            return
        words, exec_command = words[1:], []
        if "--" in words:
            at = words.index("--")
            words, exec_command = words[:at], words[at + 1 :]
            if not exec_command:
                raise UsageError("bad number of arguments: `--` must be followed by exec command.")
        request = self.parser.parse_args(words)
        if request.key is None:
            raise UsageError("bad number of arguments")
        try:
            options = watch_options(request)
        except UsageError as exc:
            _invalid(line, str(exc))
            return
        watch = partial(print_watch, exec_command=exec_command, opened=self.watchers)
        self.nursery.start_soon(watch, self.ctx, self.client, self.header, request.key, options)
