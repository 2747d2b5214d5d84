"""``dev-server`` (a throwaway etcd in the foreground), ``demo`` (the guided tour) and
``version``: the commands that need no etcd to talk to."""

from __future__ import annotations

import argparse
import socket
from typing import TYPE_CHECKING

from puregrpc_etcd._cli.args import EXIT_ERROR, UsageError

if TYPE_CHECKING:
    import trio

    from puregrpc_etcd._cli.args import CommandTree
    from puregrpc_etcd._cli.session import Context
    from puregrpc_etcd.testing import EtcdServer
else:
    from puregrpc_etcd._cli import trio  # imported on first use

DEV_SERVER_PORT = 2379
# The etcd API this package speaks: its protobuf definitions are etcd 3.5's (schema/README.md).
API_VERSION = "3.5"


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise UsageError(
                f"port {port} is in use; pick another with --port (0: any free port)", EXIT_ERROR
            ) from None


async def dev_server_command(ctx: Context, args: argparse.Namespace) -> int:
    """Run etcd until Ctrl-C in a temporary directory, which is removed on the way out."""
    from puregrpc_etcd.testing import EtcdNotFoundError, EtcdServer, EtcdStartError, etcd_version

    try:
        server = EtcdServer(binary=args.binary)
    except EtcdNotFoundError as exc:
        raise UsageError(str(exc), EXIT_ERROR) from None
    if args.port:
        _check_port_free(args.port)
        server.client_port = args.port
    try:
        try:
            await trio.to_thread.run_sync(server.start)
        except EtcdStartError as exc:
            raise UsageError(str(exc).splitlines()[0], EXIT_ERROR) from None
        major, minor = etcd_version(server.binary)
        out = ctx.out
        out.line(f"etcd {major}.{minor} serving at {server.endpoint}")
        out.line(f"data in {server.workdir} (removed on exit); Ctrl-C stops it")
        out.line(f"export ETCDCTL_ENDPOINTS={server.endpoint}")
        await trio.to_thread.run_sync(_wait_exit, server, abandon_on_cancel=True)
        raise UsageError(f"etcd exited unexpectedly; its log:\n{server.log_tail(5)}", EXIT_ERROR)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(server.close)


def _wait_exit(server: EtcdServer) -> None:
    if server.process is not None:
        server.process.wait()


async def demo_command(ctx: Context, args: argparse.Namespace) -> int:
    from puregrpc_etcd import demo

    await demo.tour(pause=args.pause, binary=args.binary)
    return 0


async def version_command(ctx: Context, args: argparse.Namespace) -> int:
    """Our version and the API's, in the two lines of ``etcdctl version``."""
    from puregrpc_etcd import __version__

    ctx.out.line(f"puregrpc-etcd version: {__version__}")
    ctx.out.line(f"API version: {API_VERSION}")
    return 0


def register(tree: CommandTree) -> None:
    version = tree.command("version", "Prints the version of puregrpc-etcd", version_command)
    version.set_defaults(offline=True)  # never awaits: run without an event loop (cli.py)
    dev = tree.command(
        "dev-server",
        "Runs a throwaway local etcd in the foreground until Ctrl-C",
        dev_server_command,
    )
    dev.add_argument(
        "--port", type=int, default=DEV_SERVER_PORT, help="client port (0: any free port)"
    )
    dev.add_argument("--binary", default=None, help="the etcd binary (default: found as tests do)")
    dev.set_defaults(streaming=True)
    demo = tree.command(
        "demo", "Starts a throwaway etcd and walks through every feature", demo_command
    )
    demo.add_argument(
        "--pause", type=float, default=0.5, help="seconds between steps (0: no pauses)"
    )
    demo.add_argument("--binary", default=None, help="the etcd binary (default: found as tests do)")
