"""``lease grant|revoke|timetolive|list|keep-alive``, ``lock`` and ``elect``.

Lease replies print as etcdctl's do; their json is Go's encoding of clientv3's structs, which
embed the response header (so its fields sit at the top level) and name fields ``ID``/``TTL``.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from puregrpc_etcd._cli.args import EXIT_ERROR, UsageError, arg_bytes, hex_id
from puregrpc_etcd._cli.formats import JsonObject, b64, header_json
from puregrpc_etcd._cli.kv_commands import go_exec_error
from puregrpc_etcd._cli.replies import current_header, get_json, print_get

if TYPE_CHECKING:
    import trio

    from puregrpc_etcd._cli.args import CommandTree
    from puregrpc_etcd._cli.session import Context
    from puregrpc_etcd.client import Client
    from puregrpc_etcd.types import KeyValue, ResponseHeader
else:
    from puregrpc_etcd._cli import trio  # imported on first use


def _flat(header: ResponseHeader, **fields: object) -> JsonObject:
    result = header_json(header)
    result.update(fields)
    return result


async def grant_command(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.show(
        lambda c: c.grant(args.ttl),
        lambda r: _flat(r.header, ID=r.id, TTL=r.ttl, Error=""),
        lambda r: ctx.out.line(f"lease {r.id:016x} granted with TTL({r.ttl}s)"),
    )


async def revoke_command(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.show(
        lambda c: c.revoke(args.lease_id),
        lambda r: {"header": header_json(r.header)},
        lambda r: ctx.out.line(f"lease {args.lease_id:016x} revoked"),
    )


async def timetolive_command(ctx: Context, args: argparse.Namespace) -> int:
    ctx.require_format("simple", "json")
    async with ctx.connect() as client:
        reply = await client.time_to_live(args.lease_id, keys=args.keys)
    if ctx.write_out == "json":
        keys = [b64(key) for key in reply.keys] or None
        fields = {"id": reply.id, "ttl": reply.ttl, "granted-ttl": reply.granted_ttl, "keys": keys}
        ctx.out.json(_flat(reply.header, **fields))
        return 0
    if reply.granted_ttl == 0 and reply.ttl == -1:
        ctx.out.line(f"lease {args.lease_id:016x} already expired")
        return 0
    text = f"lease {reply.id:016x} granted with TTL({reply.granted_ttl}s), remaining({reply.ttl}s)"
    if args.keys:
        names = b" ".join(ctx.out.text(key) for key in reply.keys)
        ctx.out.line(text.encode() + b", attached keys([" + names + b"])")
    else:
        ctx.out.line(text)
    return 0


async def list_command(ctx: Context, args: argparse.Namespace) -> int:
    ctx.require_format("simple", "json")
    async with ctx.connect() as client:
        ids = await client.leases()
        header = await current_header(client)
    if ctx.write_out == "json":
        # clientv3 makes the list (empty, not nil) whatever etcd sent: "leases":[] as etcdctl.
        ctx.out.json(_flat(header, leases=[{"id": i} for i in ids]))
        return 0
    ctx.out.line(f"found {len(ids)} leases")
    for lease_id in ids:
        ctx.out.line(f"{lease_id:016x}")
    return 0


async def keep_alive_command(ctx: Context, args: argparse.Namespace) -> int:
    """Renew the lease at a third of its TTL and print each renewal, as etcdctl does."""
    ctx.require_format("simple", "json")
    from puregrpc_etcd.errors import LeaseNotFoundError

    async with ctx.connect() as client:
        while True:
            try:
                reply = await client.keepalive_once(args.lease_id)
            except LeaseNotFoundError:
                if args.once:
                    raise
                ctx.out.line(f"lease {args.lease_id:016x} expired or revoked.")
                return 0
            if ctx.write_out == "json":
                ctx.out.json(_flat(reply.header, ID=reply.id, TTL=reply.ttl))
            else:
                ctx.out.line(f"lease {reply.id:016x} keepalived with TTL({reply.ttl})")
            if args.once:
                return 0
            await trio.sleep(max(reply.ttl / 3, 0.5))


async def _show_key(ctx: Context, client: Client, key: bytes) -> int:
    """Print a lock's or leader's key as etcdctl does (a get of it), and its store revision."""
    reply = await client.get(key)
    if not reply.kvs:
        raise UsageError("lock lost on init", EXIT_ERROR)
    if ctx.write_out == "json":
        ctx.out.json(get_json(reply))
    else:
        print_get(ctx.out, reply)
    return reply.header.revision


async def lock_command(ctx: Context, args: argparse.Namespace) -> int:
    """Hold a lock until interrupted, or while a command runs (its exit status is ours)."""
    ctx.require_format("simple", "json")
    held = False
    try:
        async with ctx.connect() as client, client.lock(args.name, ttl=args.ttl) as lock:
            held = True
            if not args.exec_command:
                await _show_key(ctx, client, lock.key)
                await trio.sleep_forever()
            reply = await client.get(lock.key)
            env = dict(os.environ)
            env["ETCD_LOCK_KEY"] = os.fsdecode(lock.key)
            env["ETCD_LOCK_REV"] = str(reply.header.revision)
            try:
                process = await trio.run_process(
                    args.exec_command, check=False, env=env, stdin=None
                )
            except OSError as exc:
                raise UsageError(go_exec_error(args.exec_command[0], exc), EXIT_ERROR) from None
    finally:
        _fail_if_interrupted_before(ctx, held, "the lock was held")
    if process.returncode:
        raise UsageError(f"exit status {process.returncode}", process.returncode)
    return 0


async def elect_command(ctx: Context, args: argparse.Namespace) -> int:
    """Campaign with a proposal and lead until interrupted, or observe (``-l``) the leaders."""
    ctx.require_format("simple", "json")
    if args.listen == (args.proposal is not None):
        raise UsageError(
            "proposal given but -l is set" if args.listen else "no proposal argument but -l not set"
        )
    # An observer's Ctrl-C ends it as intended; a candidate's before it won is a failure.
    elected = args.listen
    try:
        async with ctx.connect() as client:
            election = client.election(args.name)
            if args.listen:
                async with election.observe() as leaders:
                    async for kv in leaders:
                        _print_leader(ctx, kv)
                raise UsageError("elect: observer lost", EXIT_ERROR)
            async with election.campaign(args.proposal) as leader:
                elected = True
                await _show_key(ctx, client, leader.key)
                await trio.sleep_forever()
    finally:
        _fail_if_interrupted_before(ctx, elected, "the leadership was won")
    return 0


def _fail_if_interrupted_before(ctx: Context, held: bool, what: str) -> None:
    """Ctrl-C while still waiting is a failure, as etcdctl's (exit 1): nothing was held.

    Called from a ``finally``: the error replaces the cancellation on its way out."""
    if ctx.interrupted and not held:
        raise UsageError(f"interrupted before {what}", EXIT_ERROR)


def _print_leader(ctx: Context, kv: KeyValue) -> None:
    if ctx.write_out == "json":
        ctx.out.json({"kvs": [{"key": b64(kv.key), "value": b64(kv.value)}]})
    else:
        ctx.out.kv(kv)


def register(tree: CommandTree) -> None:
    tree.group("lease", "Lease related commands")
    grant = tree.command("grant", "Creates a lease (TTL in seconds)", grant_command, group="lease")
    grant.add_argument("ttl", type=int)
    revoke = tree.command("revoke", "Revokes a lease", revoke_command, group="lease")
    revoke.add_argument("lease_id", type=hex_id, metavar="LEASE_ID")
    ttl = tree.command(
        "timetolive", "Gets a lease's remaining TTL", timetolive_command, group="lease"
    )
    ttl.add_argument("lease_id", type=hex_id, metavar="LEASE_ID")
    ttl.add_argument("--keys", action="store_true", help="also get the keys attached to it")
    tree.command("list", "Lists all active leases", list_command, group="lease")
    keep = tree.command(
        "keep-alive", "Keeps a lease alive (renews it)", keep_alive_command, group="lease"
    )
    keep.add_argument("lease_id", type=hex_id, metavar="LEASE_ID")
    keep.add_argument("--once", action="store_true", help="renew once and exit")
    keep.set_defaults(streaming=True)

    lock = tree.command(
        "lock", "Acquires a named lock (and runs a command holding it)", lock_command
    )
    lock.add_argument("name", type=arg_bytes)
    lock.add_argument("exec_command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    lock.add_argument("--ttl", type=int, default=10, help="session TTL in seconds")
    lock.set_defaults(streaming=True)

    elect = tree.command("elect", "Observes and participates in leader election", elect_command)
    elect.add_argument("name", type=arg_bytes)
    elect.add_argument("proposal", type=arg_bytes, nargs="?")
    elect.add_argument("-l", "--listen", action="store_true", help="observation mode")
    elect.set_defaults(streaming=True)
