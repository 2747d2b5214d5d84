"""The ``puregrpc-etcd`` command: etcdctl's subcommands, flags and outputs, plus ``dev-server``
and ``demo``.

``run(argv)`` parses, runs one command under trio and returns the exit status; expected
failures print one ``Error:`` line on stderr, and Ctrl-C ends streaming commands cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Sequence

from puregrpc_etcd import _entry
from puregrpc_etcd._cli import (
    admin_commands,
    auth_commands,
    bench_commands,
    check_datascale,
    check_perf,
    cluster_commands,
    kv_commands,
    lease_commands,
    local_commands,
    mirror_command,
)
from puregrpc_etcd._cli.args import (
    EXIT_BAD_ARGS,
    EXIT_BAD_CONNECTION,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    CommandTree,
    Handler,
    UsageError,
    bool_flags_of,
    normalize_bool_flags,
    split_exec_command,
)
from puregrpc_etcd._cli.session import Context, Interrupted, error_text, from_environment
from puregrpc_etcd._exception_groups import unwrap_group
from puregrpc_etcd.errors import ConnectionFailedError, EtcdError

if TYPE_CHECKING:
    import trio
else:
    from puregrpc_etcd._cli import trio  # imported on first use: not for --help or version

__all__ = ["build_parser", "run"]

PROG = "puregrpc-etcd"


def build_parser() -> CommandTree:
    tree = CommandTree(PROG)
    kv_commands.register(tree)
    lease_commands.register(tree)
    cluster_commands.register(tree)
    admin_commands.register(tree)
    mirror_command.register(tree)
    auth_commands.register(tree)
    check_datascale.register(tree)
    local_commands.register(tree)
    bench_commands.register(tree)
    check_perf.register(tree)
    return tree


class _Interrupted(Exception):
    """Ctrl-C (or SIGTERM) ended a command that is not meant to run until interrupted."""


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command line (without the program name); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    tree = build_parser()
    argv, watch_command = split_exec_command(argv, "watch", tree.command_names)
    try:
        args = tree.root.parse_args(normalize_bool_flags(argv, bool_flags_of(tree.root, argv)))
        if watch_command:
            args.exec_command = watch_command
    except UsageError as exc:
        return _fail(str(exc), exc.exit_code)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        # As etcdctl: a command group alone (``lease``) prints its help and succeeds.
        (tree.group_parser(args.command) if args.command else tree.root).print_help()
        return 0
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            context = from_environment(args)
            if getattr(args, "offline", False):
                return _run_offline(handler, context, args)
            _import_the_client()
            return trio.run(_run_command, handler, context, args)
    except _Interrupted:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BaseException as exc:
        return _report(_one_error(unwrap_group(exc)))


_EXPECTED = (UsageError, EtcdError, OSError, ValueError, TypeError, KeyboardInterrupt)


def _one_error(exc: BaseException) -> BaseException:
    """Of a group of expected errors (workers of a benchmark all failing to connect, say), the
    first: the command prints one line. Anything else is left whole, to be raised."""
    leaves = []
    pending = [exc]
    while pending:
        current = pending.pop(0)
        inner = getattr(current, "exceptions", None)
        if isinstance(current, BaseException) and isinstance(inner, (list, tuple)):
            pending.extend(e for e in inner if not isinstance(e, trio.Cancelled))
        else:
            leaves.append(current)
    if leaves and all(isinstance(leaf, _EXPECTED) for leaf in leaves):
        failed = [leaf for leaf in leaves if isinstance(leaf, ConnectionFailedError)]
        return (failed or leaves)[0]
    return exc


def _import_the_client() -> None:
    """Import what a command that talks to etcd runs on (trio, protobuf, the client) while the
    command's start keeps the garbage collector paused, then resume it: the command may run for
    hours (``watch``, ``lock``, ``dev-server``)."""
    import puregrpc_etcd.client  # noqa: F401

    _entry.resume_collector()


def _run_offline(handler: Handler, context: Context, args: argparse.Namespace) -> int:
    """Run a command that never awaits (``version``) without an event loop: importing trio
    would take most of its run time."""
    coroutine = handler(context, args)
    try:
        coroutine.send(None)  # type: ignore[attr-defined]
    except StopIteration as finished:
        return int(finished.value)
    coroutine.close()  # type: ignore[attr-defined]
    raise RuntimeError(f"{args.command} awaited something: it cannot run offline")


def _report(exc: BaseException) -> int:
    if isinstance(exc, UsageError):
        return _fail(str(exc), exc.exit_code)
    if isinstance(exc, ConnectionFailedError):
        return _fail(error_text(exc), EXIT_BAD_CONNECTION)
    if isinstance(exc, (EtcdError, OSError)):
        return _fail(error_text(exc), EXIT_ERROR)
    if isinstance(exc, (ValueError, TypeError)):
        # The library checks arguments before any I/O; these are the user's input.
        return _fail(str(exc), EXIT_BAD_ARGS)
    if isinstance(exc, (KeyboardInterrupt, _Interrupted)):
        return _fail("interrupted", EXIT_INTERRUPTED)
    raise exc


def _show_warning(message: Warning | str, *_: object, **__: object) -> None:
    # One line, as errors are: the file and line of the library are no help to a command user.
    print(f"Warning: {message}", file=sys.stderr)


def _fail(message: str, code: int) -> int:
    text = " ".join(message.split("\n")).strip()
    print(f"Error: {text}", file=sys.stderr)
    sys.stderr.flush()
    return code


async def _run_command(handler: Handler, context: Context, args: argparse.Namespace) -> int:
    """Run the handler; SIGINT/SIGTERM interrupt it, which is how streaming commands end."""
    streaming = bool(getattr(args, "streaming", False))
    result = 0
    try:
        with trio.CancelScope() as scope:

            async def watch_signals(
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
            ) -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    task_status.started()
                    async for _ in signals:
                        if not context.interrupt():
                            scope.cancel()
                        return

            async with trio.open_nursery() as nursery:
                if threading.current_thread() is threading.main_thread():
                    await nursery.start(watch_signals)
                result = await handler(context, args)
                nursery.cancel_scope.cancel()
    except BaseException as exc:
        if not isinstance(unwrap_group(exc), Interrupted):
            raise
    if context.interrupted:
        if streaming:
            return 0
        raise _Interrupted
    return result
