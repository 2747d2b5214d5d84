"""``make-mirror``: copy a prefix to another cluster, then keep the copy current until Ctrl-C.

As etcdctl's: a consistent copy at one revision (the library's ``mirror()``), then every later
change, one destination transaction per source revision of at most ``--max-txn-ops``
operations, and the number of keys synced printed every 30 s. Unlike etcdctl's it waits out an
unreachable destination (the transactions are idempotent, so one retried after an unclear
failure does no harm) and copies the prefix again rather than stop when the source's history
was compacted under it.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from puregrpc_etcd._cli import stdin
from puregrpc_etcd._cli.args import UsageError
from puregrpc_etcd._cli.replies import current_header
from puregrpc_etcd._cli.session import Context, Settings, endpoint_url, is_etcd_url
from puregrpc_etcd._endpoints import ConnectSettings
from puregrpc_etcd.errors import DeadlineExceededError, UnavailableError

if TYPE_CHECKING:
    import trio

    from puregrpc_etcd._cli.args import CommandTree
    from puregrpc_etcd.client import Client
    from puregrpc_etcd.mirror import Mirror, MirrorChange, MirrorChanges
    from puregrpc_etcd.txn import Op
else:
    from puregrpc_etcd._cli import OnFirstUse, trio  # imported on first use

    Op = OnFirstUse("puregrpc_etcd.txn", "Op")  # protobuf

DEFAULT_MAX_TXN_OPS = 128
REPORT_INTERVAL = 30.0
# Between two attempts at a destination that does not answer.
_RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)


class Copier:
    """Writes to the destination what happened under the source prefix, and counts it."""

    def __init__(self, dest: Client, source_prefix: bytes, dest_prefix: bytes, max_ops: int):
        self.dest = dest
        self.source_prefix = source_prefix
        self.dest_prefix = dest_prefix
        self.max_ops = max_ops
        #: Keys synced: each put and delete, as etcdctl counts them.
        self.total = 0
        # The source keys the destination holds, to delete the ones gone after a resync.
        self._copied: set[bytes] = set()

    def target(self, key: bytes) -> bytes:
        return self.dest_prefix + key[len(self.source_prefix) :]

    async def copy_all(self, mirror: Mirror, *, resync: bool) -> None:
        """The mirror's whole state; after a resync, also delete the keys no longer there."""
        items = mirror.items()
        ops = [Op.put(self.target(key), kv.value) for key, kv in items]
        if resync:
            gone = self._copied - {key for key, _ in items}
            ops += [Op.delete(self.target(key)) for key in sorted(gone)]
        self._copied = {key for key, _ in items}
        for start in range(0, len(ops), self.max_ops):
            await self.commit(ops[start : start + self.max_ops])
        self.total += len(ops)

    async def follow(self, mirror: Mirror, feed: MirrorChanges) -> None:
        """Apply the changes, one transaction per source revision (split at ``max_ops``)."""
        ops: list[Op] = []
        revision = 0
        while True:
            change = await _next(feed, wait=not ops)
            if change is None or change.kind == "resync" or change.revision != revision:
                if ops:
                    await self.commit(ops)
                    ops = []
                if change is None:
                    continue
            if change.kind == "resync":
                await self.copy_all(mirror, resync=True)
                continue
            if len(ops) == self.max_ops:
                await self.commit(ops)
                ops = []
            revision = change.revision
            ops.append(self.op(change.kind, change.key, change.kv.value if change.kv else b""))

    def op(self, kind: str, key: bytes, value: bytes) -> Op:
        """The destination's side of a source change (and one more key synced)."""
        self.total += 1
        if kind == "delete":
            self._copied.discard(key)
            return Op.delete(self.target(key))
        self._copied.add(key)
        return Op.put(self.target(key), value)

    async def commit(self, ops: list[Op]) -> None:
        """One destination transaction, retried until the destination answers."""
        failures = 0
        while not await self._try_commit(ops, failures):
            await trio.sleep(_RETRY_DELAYS[min(failures, len(_RETRY_DELAYS) - 1)])
            failures += 1

    async def _try_commit(self, ops: list[Op], failures: int) -> bool:
        try:
            await self.dest.txn(success=ops)
        except (UnavailableError, DeadlineExceededError) as exc:
            if failures == 0:
                print(f"Warning: the destination: {exc}; retrying", file=sys.stderr)
            return False
        return True

    async def report(self, out: Context) -> None:
        while True:
            await trio.sleep(REPORT_INTERVAL)
            out.out.line(str(self.total))


async def _next(feed: MirrorChanges, *, wait: bool) -> MirrorChange | None:
    """The next change; without ``wait``, None unless one is already there (the end of the
    source revision's events, which arrive together)."""
    if wait:
        return await feed.__anext__()
    with trio.move_on_after(0):
        return await feed.__anext__()
    return None


async def make_mirror_command(ctx: Context, args: argparse.Namespace) -> int:
    if args.no_dest_prefix and args.dest_prefix:
        raise UsageError(
            "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one"
        )
    if args.max_txn_ops < 1:
        raise UsageError("--max-txn-ops must be at least 1")
    if args.rev < 0:
        raise UsageError(f"--rev must not be negative, not {args.rev}")
    source_prefix = args.prefix.encode()
    dest_prefix = b"" if args.no_dest_prefix else (args.dest_prefix or args.prefix).encode()
    dest_ctx = Context(_dest_settings(ctx, args))
    async with ctx.connect() as client, dest_ctx.connect() as dest:
        # Unary calls first: an unreachable endpoint fails at once (exit 2), as elsewhere.
        await current_header(client)
        await current_header(dest)
        copier = Copier(dest, source_prefix, dest_prefix, args.max_txn_ops)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(copier.report, ctx)
                if args.rev:
                    await _follow_watch(client, copier, args.rev)
                else:
                    async with client.mirror(source_prefix) as mirror:
                        feed = mirror.changes()  # taken with items(): nothing falls between
                        await copier.copy_all(mirror, resync=False)
                        await copier.follow(mirror, feed)
        finally:
            ctx.out.line(str(copier.total))
    return 0


async def _follow_watch(client: Client, copier: Copier, revision: int) -> None:
    """``--rev``: no copy, the changes from that revision on (a compacted one fails)."""
    async with client.watch(copier.source_prefix, prefix=True, start_revision=revision) as watcher:
        ops: list[Op] = []
        ops_revision = 0
        async for event in watcher:
            kv = event.kv
            if ops and (kv.mod_revision != ops_revision or len(ops) == copier.max_ops):
                await copier.commit(ops)
                ops = []
            ops_revision = kv.mod_revision
            ops.append(copier.op(event.type, kv.key, kv.value))
            if not watcher.pending:  # the source revision's events arrive together
                await copier.commit(ops)
                ops = []


def _dest_settings(ctx: Context, args: argparse.Namespace) -> Settings:
    user, password = args.dest_user, args.dest_password
    if user and password is None and ":" in user:
        user, password = user.split(":", 1)
    endpoint = args.destination
    url = endpoint_url(endpoint) if is_etcd_url(endpoint) else ConnectSettings()
    if not user:
        user, password = url.username, password if password is not None else url.password
    if user and password is None:
        if not stdin.is_terminal():
            raise UsageError("--dest-user needs a password: give user:password or --dest-password")
        password = getpass.getpass("Destination Password: ")
    if not args.dest_insecure_transport and "://" not in endpoint:
        endpoint = "https://" + endpoint
    return replace(
        ctx.settings,
        endpoints=url.endpoints or [endpoint],
        user=user or None,
        password=password,
        cacert=args.dest_cacert or url.cacert,
        cert=args.dest_cert or url.cert,
        key=args.dest_key or url.key,
        insecure_skip_tls_verify=url.insecure_skip_verify,
    )


def _go_bool(text: str) -> bool:
    return text.lower() in ("true", "1", "t")


def register(tree: CommandTree) -> None:
    mirror = tree.command(
        "make-mirror", "Makes a mirror at the destination etcd cluster", make_mirror_command
    )
    mirror.add_argument("destination", metavar="DESTINATION")
    mirror.add_argument("--prefix", default="", help="Key-value prefix to mirror")
    mirror.add_argument("--rev", type=int, default=0, help="the revision to start mirroring at")
    mirror.add_argument(
        "--max-txn-ops", type=int, default=DEFAULT_MAX_TXN_OPS,
        help="Maximum number of operations permitted in a transaction during syncing updates.",
    )  # fmt: skip
    mirror.add_argument("--dest-prefix", default="", help="the prefix at the destination")
    mirror.add_argument(
        "--no-dest-prefix", action="store_true", help="mirror to the destination's root"
    )
    mirror.add_argument("--dest-cacert", help="CA bundle of the destination's servers")
    mirror.add_argument("--dest-cert", help="TLS client certificate for the destination")
    mirror.add_argument("--dest-key", help="TLS client key for the destination")
    mirror.add_argument(
        "--dest-insecure-transport", type=_go_bool, nargs="?", const=True, default=True,
        help="no TLS to the destination unless given TLS files (default true)",
    )  # fmt: skip
    mirror.add_argument("--dest-user", help="destination username[:password]")
    mirror.add_argument("--dest-password", help="destination password")
    mirror.set_defaults(streaming=True)
