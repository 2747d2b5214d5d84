"""``member`` and ``endpoint`` (snapshot, defrag, alarm and move-leader: ``admin_commands.py``)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Sequence

from puregrpc_etcd._cli.args import EXIT_ERROR, UsageError, hex_id
from puregrpc_etcd._cli.formats import (
    JsonObject,
    go_duration,
    header_json,
    human_bytes,
    omit_empty,
)
from puregrpc_etcd._cli.replies import current_header
from puregrpc_etcd._cli.session import error_text

if TYPE_CHECKING:
    import trio

    from puregrpc_etcd._cli.args import CommandTree
    from puregrpc_etcd._cli.session import Context
    from puregrpc_etcd.client import Client
    from puregrpc_etcd.cluster import Member
    from puregrpc_etcd.types import ResponseHeader
else:
    from puregrpc_etcd._cli import trio  # imported on first use

_MEMBER_HEADER = ("ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner")


def member_json(member: Member) -> JsonObject:
    return omit_empty(
        [
            ("ID", member.id),
            ("name", member.name),
            ("peerURLs", list(member.peer_urls)),
            ("clientURLs", list(member.client_urls)),
            ("isLearner", member.is_learner),
        ]
    )


def member_row(member: Member) -> list[str]:
    return [
        f"{member.id:x}",
        "started" if member.name else "unstarted",
        member.name,
        ",".join(member.peer_urls),
        ",".join(member.client_urls),
        "true" if member.is_learner else "false",
    ]


def _members_reply_json(header: ResponseHeader, members: Sequence[Member]) -> JsonObject:
    # Member replies carry no revision: etcd leaves it out of the cluster service's headers.
    cluster_header = header_json(header)
    cluster_header.pop("revision", None)
    return {"header": cluster_header, "members": [member_json(m) for m in members]}


async def member_list_command(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.connect() as client:
        members = await client.cluster.members()
        header = await current_header(client) if ctx.write_out == "json" else None
    if header is not None:
        ctx.out.json(_members_reply_json(header, members))
    elif ctx.write_out == "table":
        ctx.out.table(_MEMBER_HEADER, [member_row(m) for m in members])
    else:
        for member in members:
            ctx.out.line(", ".join(member_row(member)))
    return 0


def _peer_urls(text: str | None) -> list[str]:
    urls = [url.strip() for url in (text or "").split(",") if url.strip()]
    if not urls:
        raise UsageError("member peer urls not provided")
    return urls


async def member_add_command(ctx: Context, args: argparse.Namespace) -> int:
    ctx.require_format("simple", "json")
    urls = _peer_urls(args.peer_urls)
    async with ctx.connect() as client:
        reply = await client.cluster.add_member(urls, learner=args.learner)
    if ctx.write_out == "json":
        result = _members_reply_json(reply.header, reply.members)
        ctx.out.json(
            {
                "header": result["header"],
                "member": member_json(reply.member),
                "members": result["members"],
            }
        )
        return 0
    ctx.out.line(f"Member {reply.member.id:16x} added to cluster {reply.header.cluster_id:16x}")
    initial: list[str] = []
    for member in reply.members:
        name = args.name if member.id == reply.member.id else member.name
        initial.extend(f"{name}={url}" for url in member.peer_urls)
    ctx.out.line()
    ctx.out.line(f'ETCD_NAME="{args.name}"')
    ctx.out.line(f'ETCD_INITIAL_CLUSTER="{",".join(initial)}"')
    ctx.out.line(f'ETCD_INITIAL_ADVERTISE_PEER_URLS="{",".join(reply.member.peer_urls)}"')
    ctx.out.line('ETCD_INITIAL_CLUSTER_STATE="existing"')
    return 0


async def member_change_command(ctx: Context, args: argparse.Namespace) -> int:
    """``member remove``, ``update`` and ``promote``: one id, the members after the change."""
    ctx.require_format("simple", "json")
    action = args.member_command
    async with ctx.connect() as client:
        if action == "remove":
            members = await client.cluster.remove_member(args.member_id)
        elif action == "update":
            members = await client.cluster.update_member(args.member_id, _peer_urls(args.peer_urls))
        else:
            members = await client.cluster.promote_member(args.member_id)
        header = await current_header(client)
    if ctx.write_out == "json":
        ctx.out.json(_members_reply_json(header, members))
        return 0
    verb = {"remove": "removed from", "update": "updated in", "promote": "promoted in"}[action]
    ctx.out.line(f"Member {args.member_id:16x} {verb} cluster {header.cluster_id:16x}")
    return 0


async def _target_endpoints(ctx: Context, client: Client, cluster: bool) -> list[str]:
    if not cluster:
        return list(ctx.settings.endpoints)
    urls = [url for m in await client.cluster.members() for url in m.client_urls]
    if not urls:
        raise UsageError("no member publishes a client URL", EXIT_ERROR)
    return urls


async def endpoint_status_command(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.connect() as client:
        rows: list[list[str]] = []
        encoded: list[JsonObject] = []
        for endpoint in await _target_endpoints(ctx, client, args.cluster):
            status = await client.maintenance.status(endpoint)
            rows.append(
                [
                    endpoint,
                    f"{status.member_id:x}",
                    status.version,
                    human_bytes(status.db_size),
                    "true" if status.is_leader else "false",
                    "true" if status.is_learner else "false",
                    str(status.raft_term),
                    str(status.raft_index),
                    str(status.raft_applied_index),
                    ", ".join(status.errors),
                ]
            )
            body = omit_empty(
                [
                    ("header", header_json(status.header)),
                    ("version", status.version),
                    ("dbSize", status.db_size),
                    ("leader", status.leader),
                    ("raftIndex", status.raft_index),
                    ("raftTerm", status.raft_term),
                    ("raftAppliedIndex", status.raft_applied_index),
                    ("errors", list(status.errors)),
                    ("dbSizeInUse", status.db_size_in_use),
                    ("isLearner", status.is_learner),
                ]
            )
            encoded.append({"Endpoint": endpoint, "Status": body})
    if ctx.write_out == "json":
        ctx.out.json(encoded)
    elif ctx.write_out == "table":
        header = ("Endpoint", "ID", "Version", "DB Size", "Is Leader", "Is Learner",
                  "Raft Term", "Raft Index", "Raft Applied Index", "Errors")  # fmt: skip
        ctx.out.table(header, rows)
    else:
        for row in rows:
            ctx.out.line(", ".join(row))
    return 0


async def _health(ctx: Context, endpoint: str) -> tuple[bool, float, str]:
    """etcdctl's check: a linearizable read (permission denied still proves a quorum), then
    no alarm raised."""
    from puregrpc_etcd.errors import EtcdError, PermissionDeniedError

    started = time.monotonic()
    try:
        async with ctx.connect([endpoint]) as client:
            try:
                await client.get("health")
            except PermissionDeniedError:
                pass
            alarms = await client.maintenance.alarms()
    except (EtcdError, OSError) as exc:
        return False, time.monotonic() - started, error_text(exc)
    took = time.monotonic() - started
    if alarms:
        names = ", ".join(f"memberID:{a.member_id} alarm:{a.alarm.upper()} " for a in alarms)
        return False, took, f"Active Alarm(s): {names}"
    return True, took, ""


async def endpoint_health_command(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.connect() as client:
        endpoints = await _target_endpoints(ctx, client, args.cluster) if args.cluster else None
    endpoints = endpoints or list(ctx.settings.endpoints)
    results: list[tuple[bool, float, str]] = [(False, 0.0, "")] * len(endpoints)

    async def check(index: int, endpoint: str) -> None:
        results[index] = await _health(ctx, endpoint)

    async with trio.open_nursery() as nursery:
        for index, endpoint in enumerate(endpoints):
            nursery.start_soon(check, index, endpoint)
    if ctx.write_out == "json":
        ctx.out.json(
            [
                omit_empty(
                    [
                        ("endpoint", ep),
                        ("health", ok),
                        ("took", go_duration(took)),
                        ("error", error),
                    ]
                )
                for ep, (ok, took, error) in zip(endpoints, results)
            ]
        )
    elif ctx.write_out == "table":
        rows = [[ep, str(ok).lower(), go_duration(took), error]
                for ep, (ok, took, error) in zip(endpoints, results)]  # fmt: skip
        ctx.out.table(("Endpoint", "Health", "Took", "Error"), rows)
    else:
        for ep, (ok, took, error) in zip(endpoints, results):
            if ok:
                ctx.out.line(
                    f"{ep} is healthy: successfully committed proposal: took = {go_duration(took)}"
                )
            else:
                print(f"{ep} is unhealthy: failed to commit proposal: {error}", file=sys.stderr)
    if not all(ok for ok, _, _ in results):
        raise UsageError("unhealthy cluster", EXIT_ERROR)
    return 0


async def endpoint_hashkv_command(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.connect() as client:
        rows: list[list[str]] = []
        encoded: list[JsonObject] = []
        for endpoint in await _target_endpoints(ctx, client, args.cluster):
            reply = await client.maintenance.hash_kv(args.rev, endpoint)
            rows.append([endpoint, str(reply.hash)])
            body = omit_empty([("header", header_json(reply.header)), ("hash", reply.hash),
                               ("compact_revision", reply.compact_revision)])  # fmt: skip
            encoded.append({"Endpoint": endpoint, "HashKV": body})
    if ctx.write_out == "json":
        ctx.out.json(encoded)
    elif ctx.write_out == "table":
        ctx.out.table(("Endpoint", "Hash"), rows)
    else:
        for row in rows:
            ctx.out.line(", ".join(row))
    return 0


def register(tree: CommandTree) -> None:
    tree.group("member", "Membership related commands")
    tree.command("list", "Lists all members in the cluster", member_list_command, group="member")
    add = tree.command("add", "Adds a member into the cluster", member_add_command, group="member")
    add.add_argument("name")
    add.add_argument("--peer-urls", help="comma-separated peer URLs of the new member")
    add.add_argument("--learner", action="store_true", help="add it as a non-voting learner")
    for name, help in (
        ("remove", "Removes a member from the cluster"),
        ("update", "Updates a member's peer URLs"),
        ("promote", "Promotes a learner to a voting member"),
    ):
        change = tree.command(name, help, member_change_command, group="member")
        change.add_argument("member_id", type=hex_id, metavar="MEMBER_ID")
        if name == "update":
            change.add_argument("--peer-urls", help="comma-separated peer URLs")

    tree.group("endpoint", "Endpoint related commands")
    for name, help, handler in (
        ("status", "Prints the status of the endpoints", endpoint_status_command),
        ("health", "Checks the health of the endpoints", endpoint_health_command),
        ("hashkv", "Prints the KV history hash of each endpoint", endpoint_hashkv_command),
    ):
        command = tree.command(name, help, handler, group="endpoint")
        command.add_argument(
            "--cluster", action="store_true", help="use every member's client URLs"
        )
        if name == "hashkv":
            command.add_argument("--rev", type=int, default=0, help="hash up to this revision")
