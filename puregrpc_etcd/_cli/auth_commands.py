"""``user``, ``role`` and ``auth``: etcdctl's lines in ``-w simple``, and in ``-w json`` Go's
encoding of the RPC reply (the header, then ``users``, ``roles``, ``perm``, ``authRevision``)."""

from __future__ import annotations

import argparse
import getpass
from typing import TYPE_CHECKING, Sequence, Union

from puregrpc_etcd._cli import stdin
from puregrpc_etcd._cli.args import UsageError
from puregrpc_etcd._cli.formats import JsonObject, b64, header_json, omit_empty
from puregrpc_etcd._cli.replies import current_header

if TYPE_CHECKING:
    from puregrpc_etcd._cli.args import CommandTree
    from puregrpc_etcd._cli.session import Context
    from puregrpc_etcd.auth import Permission, Role
    from puregrpc_etcd.client import Client
    from puregrpc_etcd.types import ResponseHeader

Line = Union[bytes, str]

# authpb.Permission_Type, which Go's json writes as its number.
_PERMISSION_TYPES = {"read": 0, "write": 1, "readwrite": 2}


def _new_password(name: str, args: argparse.Namespace) -> str:
    """A new password: a line of stdin with ``--interactive=false``, else typed twice. An empty
    one is refused (etcdctl would set it from an empty stdin; etcd then takes any password)."""
    if not args.interactive:
        password = stdin.read_line()
    elif not stdin.is_terminal():
        raise UsageError(
            f"a password for {name} is needed: give {name}:PASSWORD, "
            "--new-user-password, or --interactive=false with it on stdin"
        )
    else:
        password = getpass.getpass(f"Password of {name}: ")
        if getpass.getpass(f"Type password of {name} again for confirmation: ") != password:
            raise UsageError("given passwords are different")
    if not password:
        raise UsageError("empty password")
    return password


async def _reply(
    ctx: Context, client: Client, lines: Sequence[Line], fields: Sequence[tuple[str, object]] = ()
) -> int:
    """Print a reply: its lines, or with ``-w json`` the header and the non-empty ``fields``."""
    if ctx.write_out == "json":
        header = header_json(await current_header(client))
        ctx.out.json({"header": header, **omit_empty(list(fields))})
    else:
        for line in lines:
            ctx.out.line(line)
    return 0


async def user_command(ctx: Context, args: argparse.Namespace) -> int:
    ctx.require_format("simple", "json")
    action = args.user_command
    async with ctx.connect() as client:
        auth = client.auth
        if action == "add":
            name, _, password = args.name.partition(":")
            if args.no_password:
                await auth.user_add(name, no_password=True)
            else:
                password = password or args.new_user_password or _new_password(name, args)
                await auth.user_add(name, password)
            return await _reply(ctx, client, [f"User {name} created"])
        if action == "delete":
            await auth.user_delete(args.name)
            return await _reply(ctx, client, [f"User {args.name} deleted"])
        if action == "list":
            names = await auth.user_list()
            return await _reply(ctx, client, names, [("users", names)])
        if action == "get":
            user = await auth.user_get(args.name)
            if args.detail:
                # etcdctl's --detail: the name as a line, then each role as `role get` shows it.
                ctx.out.line(f"User: {user.name}")
                for role_name in user.roles:
                    ctx.out.line()
                    await _show_role(ctx, client, await auth.role_get(role_name))
                return 0
            roles = "Roles:" + "".join(f" {role}" for role in user.roles)
            return await _reply(
                ctx, client, [f"User: {user.name}", roles], [("roles", list(user.roles))]
            )
        if action == "passwd":
            await auth.user_change_password(args.name, _new_password(args.name, args))
            return await _reply(ctx, client, ["Password updated"])
        if action == "grant-role":
            await auth.user_grant_role(args.name, args.role)
            return await _reply(ctx, client, [f"Role {args.role} is granted to user {args.name}"])
        await auth.user_revoke_role(args.name, args.role)
        return await _reply(ctx, client, [f"Role {args.role} is revoked from user {args.name}"])


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


def _role_lines(role: Role) -> list[Line]:
    lines: list[Line] = [f"Role {role.name}"]
    for title, kinds in (
        ("KV Read:", ("read", "readwrite")),
        ("KV Write:", ("write", "readwrite")),
    ):
        lines.append(title)
        for permission in role.permissions:
            if permission.type in kinds:
                if permission.range_end:
                    lines.append("\t" + _range_text(permission.key, permission.range_end))
                else:
                    lines.append(b"\t" + permission.key)
    return lines


def _permission_json(permission: Permission) -> JsonObject:
    return omit_empty(
        [
            ("permType", _PERMISSION_TYPES[permission.type]),
            ("key", b64(permission.key)),
            ("range_end", b64(permission.range_end)),
        ]
    )


async def _show_role(ctx: Context, client: Client, role: Role) -> int:
    perms = [_permission_json(permission) for permission in role.permissions]
    return await _reply(ctx, client, _role_lines(role), [("perm", perms)])


async def role_command(ctx: Context, args: argparse.Namespace) -> int:
    ctx.require_format("simple", "json")
    action = args.role_command
    async with ctx.connect() as client:
        auth = client.auth
        if action == "add":
            await auth.role_add(args.name)
            return await _reply(ctx, client, [f"Role {args.name} created"])
        if action == "delete":
            await auth.role_delete(args.name)
            return await _reply(ctx, client, [f"Role {args.name} deleted"])
        if action == "list":
            names = await auth.role_list()
            return await _reply(ctx, client, names, [("roles", names)])
        if action == "get":
            return await _show_role(ctx, client, await auth.role_get(args.name))
        keys = {"prefix": args.prefix, "from_key": args.from_key, "range_end": args.range_end}
        if action == "grant-permission":
            kind = args.permission.lower()
            if kind not in _PERMISSION_TYPES:
                raise UsageError(f"permission type must be read, write or readwrite, not {kind}")
            await auth.role_grant_permission(args.name, kind, args.key, **keys)
            return await _reply(ctx, client, [f"Role {args.name} updated"])
        await auth.role_revoke_permission(args.name, args.key, **keys)
        return await _reply(
            ctx, client, [f"Permission of key {args.key} is revoked from role {args.name}"]
        )


async def auth_command(ctx: Context, args: argparse.Namespace) -> int:
    action = args.auth_command
    if action == "status":
        ctx.require_format("simple", "json")
    async with ctx.connect() as client:
        auth = client.auth
        if action == "enable":
            # As etcdctl: enable and disable print their line whatever the output format.
            await auth.enable()
            ctx.out.line("Authentication Enabled")
        elif action == "disable":
            await auth.disable()
            ctx.out.line("Authentication Disabled")
        else:
            status = await auth.status()
            _print_status(ctx, status.header, status.enabled, status.auth_revision)
    return 0


def _print_status(ctx: Context, header: ResponseHeader, enabled: bool, revision: int) -> None:
    if ctx.write_out == "json":
        fields = omit_empty([("enabled", enabled), ("authRevision", revision)])
        ctx.out.json({"header": header_json(header), **fields})
    else:
        ctx.out.line(f"Authentication Status: {str(enabled).lower()}")
        ctx.out.line(f"AuthRevision: {revision}")


def register(tree: CommandTree) -> None:
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
