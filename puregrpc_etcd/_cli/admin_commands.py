"""``snapshot save``, ``defrag``, ``alarm``, ``move-leader``, and ``user``, ``role``, ``auth``."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from puregrpc_etcd._cli.args import EXIT_ERROR, UsageError, hex_id
from puregrpc_etcd.errors import EtcdError

if TYPE_CHECKING:
    from puregrpc_etcd._cli.args import CommandTree
    from puregrpc_etcd._cli.session import Context
    from puregrpc_etcd.auth import Permission
    from puregrpc_etcd.maintenance import Maintenance


class ProgressBar:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    width = 30

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.drawn = False

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if total:
            filled = min(self.width, done * self.width // total)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"\r[{bar}] {done * 100 // total:3d}% {done:,}/{total:,} bytes"
        else:
            text = f"\r{done:,} bytes"
        sys.stderr.write(text)
        sys.stderr.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


async def snapshot_save_command(ctx: Context, args: argparse.Namespace) -> int:
    progress = ProgressBar()
    try:
        async with ctx.connect() as client:
            await client.maintenance.snapshot(args.filename, progress=progress)
    finally:
        progress.finish()
    ctx.out.line(f"Snapshot saved at {args.filename}")
    return 0


async def defrag_command(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.connect() as client:
        maintenance = client.maintenance
        endpoints = list(ctx.settings.endpoints)
        if args.cluster:
            endpoints = [url for m in await client.cluster.members() for url in m.client_urls]
        failed = False
        for endpoint in endpoints:
            failed |= not await _defragment(ctx, maintenance, endpoint)
    return EXIT_ERROR if failed else 0


async def _defragment(ctx: Context, maintenance: Maintenance, endpoint: str) -> bool:
    """Defragment one member; as etcdctl, a failure is reported and the others still done."""
    try:
        await maintenance.defragment(endpoint, timeout=max(ctx.command_timeout, 30.0))
    except (EtcdError, OSError) as exc:
        print(f"Failed to defragment etcd member[{endpoint}] ({exc})", file=sys.stderr)
        return False
    ctx.out.line(f"Finished defragmenting etcd member[{endpoint}]")
    return True


async def alarm_command(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.connect() as client:
        if args.alarm_command == "disarm":
            alarms = await client.maintenance.disarm()
        else:
            alarms = await client.maintenance.alarms()
    for alarm in alarms:
        ctx.out.line(f"memberID:{alarm.member_id} alarm:{alarm.alarm.upper()} ")
    return 0


async def move_leader_command(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.connect() as client:
        maintenance = client.maintenance
        before = await maintenance.status()
        await maintenance.move_leader(args.member_id)
    ctx.out.line(f"Leadership transferred from {before.leader:x} to {args.member_id:x}")
    return 0


def _new_password(name: str, args: argparse.Namespace) -> str:
    if not args.interactive:
        line = sys.stdin.readline()
        return line.rstrip("\n")
    if not sys.stdin.isatty():
        raise UsageError(
            f"a password for {name} is needed: give {name}:PASSWORD, "
            "--new-user-password, or --interactive=false with it on stdin"
        )
    first = getpass.getpass(f"Password of {name}: ")
    if getpass.getpass(f"Type password of {name} again for confirmation: ") != first:
        raise UsageError("given passwords are different")
    return first


async def user_command(ctx: Context, args: argparse.Namespace) -> int:
    action = args.user_command
    out = ctx.out
    async with ctx.connect() as client:
        auth = client.auth
        if action == "add":
            name, _, password = args.name.partition(":")
            if args.no_password:
                await auth.user_add(name, no_password=True)
            else:
                password = password or args.new_user_password or _new_password(name, args)
                await auth.user_add(name, password)
            out.line(f"User {name} created")
        elif action == "delete":
            await auth.user_delete(args.name)
            out.line(f"User {args.name} deleted")
        elif action == "list":
            for user_name in await auth.user_list():
                out.line(user_name)
        elif action == "get":
            user = await auth.user_get(args.name)
            out.line(f"User: {user.name}")
            if not args.detail:
                out.line("Roles:" + "".join(f" {role}" for role in user.roles))
            for role_name in user.roles if args.detail else ():
                out.line()
                _print_role(ctx, role_name, (await auth.role_get(role_name)).permissions)
        elif action == "passwd":
            await auth.user_change_password(args.name, _new_password(args.name, args))
            out.line("Password updated")
        elif action == "grant-role":
            await auth.user_grant_role(args.name, args.role)
            out.line(f"Role {args.role} is granted to user {args.name}")
        else:
            await auth.user_revoke_role(args.name, args.role)
            out.line(f"Role {args.role} is revoked from user {args.name}")
    return 0


def _range_text(key: bytes, range_end: bytes) -> str:
    from puregrpc_etcd._keys import prefix_range_end

    shown = key.decode("utf-8", "replace")
    if range_end == b"\x00":
        text = f"[{shown}, <open ended>"
    else:
        text = f"[{shown}, {range_end.decode('utf-8', 'replace')})"
    if prefix_range_end(key) == range_end:
        text += f" (prefix {shown})"
    return text


def _print_role(ctx: Context, name: str, permissions: tuple[Permission, ...]) -> None:
    ctx.out.line(f"Role {name}")
    for title, kinds in (
        ("KV Read:", ("read", "readwrite")),
        ("KV Write:", ("write", "readwrite")),
    ):
        ctx.out.line(title)
        for permission in permissions:
            if permission.type in kinds:
                if permission.range_end:
                    ctx.out.line("\t" + _range_text(permission.key, permission.range_end))
                else:
                    ctx.out.line(b"\t" + permission.key)


async def role_command(ctx: Context, args: argparse.Namespace) -> int:
    action = args.role_command
    out = ctx.out
    async with ctx.connect() as client:
        auth = client.auth
        if action == "add":
            await auth.role_add(args.name)
            out.line(f"Role {args.name} created")
        elif action == "delete":
            await auth.role_delete(args.name)
            out.line(f"Role {args.name} deleted")
        elif action == "list":
            for role in await auth.role_list():
                out.line(role)
        elif action == "get":
            _print_role(ctx, args.name, (await auth.role_get(args.name)).permissions)
        elif action == "grant-permission":
            kind = args.permission.lower()
            if kind not in ("read", "write", "readwrite"):
                raise UsageError(f"permission type must be read, write or readwrite, not {kind}")
            await auth.role_grant_permission(
                args.name,
                kind,
                args.key,
                prefix=args.prefix,
                from_key=args.from_key,
                range_end=args.range_end,
            )
            out.line(f"Role {args.name} updated")
        else:
            await auth.role_revoke_permission(
                args.name,
                args.key,
                prefix=args.prefix,
                from_key=args.from_key,
                range_end=args.range_end,
            )
            out.line(f"Permission of key {args.key} is revoked from role {args.name}")
    return 0


async def auth_command(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.connect() as client:
        auth = client.auth
        if args.auth_command == "enable":
            await auth.enable()
            ctx.out.line("Authentication Enabled")
        elif args.auth_command == "disable":
            await auth.disable()
            ctx.out.line("Authentication Disabled")
        else:
            status = await auth.status()
            ctx.out.line(f"Authentication Status: {str(status.enabled).lower()}")
            ctx.out.line(f"AuthRevision: {status.auth_revision}")
    return 0


def register(tree: CommandTree) -> None:
    tree.group("snapshot", "Manages etcd node snapshots")
    save = tree.command(
        "save", "Stores a snapshot of the member's store to a file", snapshot_save_command,
        group="snapshot",
    )  # fmt: skip
    save.add_argument("filename")
    defrag = tree.command("defrag", "Defragments the storage of the members", defrag_command)
    defrag.add_argument("--cluster", action="store_true", help="every member of the cluster")
    tree.group("alarm", "Alarm related commands")
    tree.command("list", "Lists all alarms", alarm_command, group="alarm")
    tree.command("disarm", "Disarms all alarms", alarm_command, group="alarm")
    move = tree.command(
        "move-leader", "Transfers leadership to another member", move_leader_command
    )
    move.add_argument("member_id", type=hex_id, metavar="MEMBER_ID")
    _register_auth(tree)


def _register_auth(tree: CommandTree) -> None:
    tree.group("user", "User related commands")
    add = tree.command("add", "Adds a user (name or name:password)", user_command, group="user")
    add.add_argument("name")
    add.add_argument("--new-user-password", default="", help="the password, on the command line")
    add.add_argument("--no-password", action="store_true", help="no password (TLS CN auth)")
    add.add_argument("--interactive", default=True, type=lambda t: t.lower() in ("true", "1"),
                     help="prompt for the password (false: read it from stdin)")  # fmt: skip
    for name, help in (("delete", "Deletes a user"), ("get", "Gets a user's roles")):
        command = tree.command(name, help, user_command, group="user")
        command.add_argument("name")
        if name == "get":
            command.add_argument("--detail", action="store_true", help="show roles' permissions")
    tree.command("list", "Lists all users", user_command, group="user")
    passwd = tree.command("passwd", "Changes a user's password", user_command, group="user")
    passwd.add_argument("name")
    passwd.add_argument("--interactive", default=True, type=lambda t: t.lower() in ("true", "1"))
    for name, help in (("grant-role", "Grants a role to a user"),
                       ("revoke-role", "Revokes a role from a user")):  # fmt: skip
        command = tree.command(name, help, user_command, group="user")
        command.add_argument("name")
        command.add_argument("role")

    tree.group("role", "Role related commands")
    for name, help in (("add", "Adds a role"), ("delete", "Deletes a role"),
                       ("get", "Gets a role's permissions")):  # fmt: skip
        tree.command(name, help, role_command, group="role").add_argument("name")
    tree.command("list", "Lists all roles", role_command, group="role")
    grant = tree.command(
        "grant-permission", "Grants read, write or readwrite on a key or range to a role",
        role_command, group="role",
    )  # fmt: skip
    grant.add_argument("name")
    grant.add_argument("permission", metavar="read|write|readwrite")
    revoke = tree.command(
        "revoke-permission", "Revokes a key or range permission from a role", role_command,
        group="role",
    )  # fmt: skip
    revoke.add_argument("name")
    for command in (grant, revoke):
        command.add_argument("key")
        command.add_argument("range_end", nargs="?")
        command.add_argument("--prefix", action="store_true", help="the keys under a prefix")
        command.add_argument("--from-key", action="store_true", help="every key from this one")

    tree.group("auth", "Enable or disable authentication")
    for name, help in (("enable", "Enables authentication"),
                       ("disable", "Disables authentication"),
                       ("status", "Shows whether authentication is on")):  # fmt: skip
        tree.command(name, help, auth_command, group="auth")
