"""Users, roles and permissions (``client.auth``): etcd's role-based access control.

Logging in is the client's business (``connect(username=, password=)``); this is the admin API.
Passwords go into requests only, never into results, reprs, logs or error messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd._keys import key_range
from puregrpc_etcd._proto import auth_pb2, rpc_pb2
from puregrpc_etcd.types import ResponseHeader, response_header

if TYPE_CHECKING:
    from puregrpc_etcd._base import ClientBase

__all__ = ["Auth", "AuthStatus", "Permission", "PermissionType", "Role", "User"]


PermissionType = Literal["read", "write", "readwrite"]
_PERMISSION_NAMES: dict[int, PermissionType] = {
    auth_pb2.Permission.READ: "read",
    auth_pb2.Permission.WRITE: "write",
    auth_pb2.Permission.READWRITE: "readwrite",
}


@dataclass(frozen=True)
class AuthStatus:
    """Whether auth is enabled, and the auth store's revision (it grows with every change to
    users, roles and permissions, and invalidates tokens issued before)."""

    __slots__ = ("auth_revision", "enabled", "header")
    header: ResponseHeader
    enabled: bool
    auth_revision: int


@dataclass(frozen=True)
class Permission:
    """Access of ``type`` to the key ``key`` (``range_end`` empty) or to the keys in
    ``[key, range_end)``; ``range_end == b"\\0"`` means every key from ``key`` on."""

    __slots__ = ("key", "range_end", "type")
    type: PermissionType
    key: bytes
    range_end: bytes


@dataclass(frozen=True)
class User:
    """A user and the roles granted to it (never its password)."""

    __slots__ = ("name", "roles")
    name: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Role:
    """A role and the key permissions it grants."""

    __slots__ = ("name", "permissions")
    name: str
    permissions: tuple[Permission, ...]


def _name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    return value


def _password(value: object) -> str:
    # The message names the type only: the value may be a password in the wrong type.
    if not isinstance(value, str):
        raise TypeError(f"password must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError("password must not be empty; use no_password=True for none")
    return value


def _permission_type(permission: object) -> str:
    """The protobuf enum name of a permission type."""
    if not isinstance(permission, str):
        raise TypeError(f"permission must be a str, not {type(permission).__name__}")
    if permission.lower() not in _PERMISSION_NAMES.values():
        raise ValueError(f"permission must be 'read', 'write' or 'readwrite', not {permission!r}")
    return permission.upper()


def _permission(pb: auth_pb2.Permission) -> Permission:
    return Permission(
        type=_PERMISSION_NAMES.get(pb.permType, "read"), key=pb.key, range_end=pb.range_end
    )


class Auth:
    """The Auth service of one client: ``client.auth``.

    Permission keys are absolute: they are not prefixed by a client's namespace, since roles
    are shared by the whole cluster.
    """

    __slots__ = ("_client",)

    def __init__(self, client: ClientBase) -> None:
        self._client = client

    async def enable(self, *, timeout: float | None = None) -> None:
        """Turn authentication on; the ``root`` user must exist and have the ``root`` role."""
        await self._client._unary(rpcs.AUTH_ENABLE, rpc_pb2.AuthEnableRequest(), timeout=timeout)

    async def disable(self, *, timeout: float | None = None) -> None:
        """Turn authentication off (needs the root role while it is on)."""
        await self._client._unary(rpcs.AUTH_DISABLE, rpc_pb2.AuthDisableRequest(), timeout=timeout)

    async def status(self, *, timeout: float | None = None) -> AuthStatus:
        """Whether authentication is on, and the auth store's revision (etcd 3.5 and later: etcd
        3.4 has no AuthStatus RPC and answers UNIMPLEMENTED, raised as ``RpcError``)."""
        reply = await self._client._unary(
            rpcs.AUTH_STATUS, rpc_pb2.AuthStatusRequest(), timeout=timeout
        )
        return AuthStatus(
            header=response_header(reply.header),
            enabled=reply.enabled,
            auth_revision=reply.authRevision,
        )

    # Users.

    async def user_add(
        self,
        name: str,
        password: str | None = None,
        *,
        no_password: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Create a user with ``password``, or with none (``no_password=True``: it can then
        only authenticate with a TLS client certificate whose common name is ``name``)."""
        request = rpc_pb2.AuthUserAddRequest(name=_name(name, "user name"))
        if no_password:
            if password is not None:
                raise ValueError("give a password or no_password=True, not both")
            request.options.no_password = True
        elif password is None:
            raise ValueError("give a password, or no_password=True for a user without one")
        else:
            request.password = _password(password)
        await self._client._unary(rpcs.USER_ADD, request, timeout=timeout)

    async def user_delete(self, name: str, *, timeout: float | None = None) -> None:
        """Delete a user."""
        request = rpc_pb2.AuthUserDeleteRequest(name=_name(name, "user name"))
        await self._client._unary(rpcs.USER_DELETE, request, timeout=timeout)

    async def user_list(self, *, timeout: float | None = None) -> list[str]:
        """The names of every user, sorted."""
        reply = await self._client._unary(
            rpcs.USER_LIST, rpc_pb2.AuthUserListRequest(), timeout=timeout
        )
        return list(reply.users)

    async def user_get(self, name: str, *, timeout: float | None = None) -> User:
        """A user and its roles."""
        request = rpc_pb2.AuthUserGetRequest(name=_name(name, "user name"))
        reply = await self._client._unary(rpcs.USER_GET, request, timeout=timeout)
        return User(name=name, roles=tuple(reply.roles))

    async def user_change_password(
        self, name: str, password: str, *, timeout: float | None = None
    ) -> None:
        """Set a user's password; tokens already issued to it stay valid until they expire."""
        request = rpc_pb2.AuthUserChangePasswordRequest(
            name=_name(name, "user name"), password=_password(password)
        )
        await self._client._unary(rpcs.USER_CHANGE_PASSWORD, request, timeout=timeout)

    async def user_grant_role(self, user: str, role: str, *, timeout: float | None = None) -> None:
        """Give ``user`` the permissions of ``role``."""
        request = rpc_pb2.AuthUserGrantRoleRequest(
            user=_name(user, "user name"), role=_name(role, "role name")
        )
        await self._client._unary(rpcs.USER_GRANT_ROLE, request, timeout=timeout)

    async def user_revoke_role(self, user: str, role: str, *, timeout: float | None = None) -> None:
        """Take ``role`` away from ``user``."""
        request = rpc_pb2.AuthUserRevokeRoleRequest(
            name=_name(user, "user name"), role=_name(role, "role name")
        )
        await self._client._unary(rpcs.USER_REVOKE_ROLE, request, timeout=timeout)

    # Roles.

    async def role_add(self, name: str, *, timeout: float | None = None) -> None:
        """Create a role with no permissions."""
        request = rpc_pb2.AuthRoleAddRequest(name=_name(name, "role name"))
        await self._client._unary(rpcs.ROLE_ADD, request, timeout=timeout)

    async def role_delete(self, name: str, *, timeout: float | None = None) -> None:
        """Delete a role (and take it from every user that has it)."""
        request = rpc_pb2.AuthRoleDeleteRequest(role=_name(name, "role name"))
        await self._client._unary(rpcs.ROLE_DELETE, request, timeout=timeout)

    async def role_list(self, *, timeout: float | None = None) -> list[str]:
        """The names of every role, sorted."""
        reply = await self._client._unary(
            rpcs.ROLE_LIST, rpc_pb2.AuthRoleListRequest(), timeout=timeout
        )
        return list(reply.roles)

    async def role_get(self, name: str, *, timeout: float | None = None) -> Role:
        """A role and its permissions."""
        request = rpc_pb2.AuthRoleGetRequest(role=_name(name, "role name"))
        reply = await self._client._unary(rpcs.ROLE_GET, request, timeout=timeout)
        return Role(name=name, permissions=tuple(_permission(pb) for pb in reply.perm))

    async def role_grant_permission(
        self,
        role: str,
        permission: PermissionType,
        key: str | bytes,
        *,
        prefix: bool = False,
        from_key: bool = False,
        range_end: str | bytes | None = None,
        timeout: float | None = None,
    ) -> None:
        """Let ``role`` ``"read"``, ``"write"`` or ``"readwrite"`` the key ``key``, the keys
        under it (``prefix=True``), every key from it on (``from_key=True``) or the keys in
        ``[key, range_end)``. An empty key with ``prefix=True`` means every key."""
        start, end = key_range(key, prefix=prefix, from_key=from_key, range_end=range_end)
        request = rpc_pb2.AuthRoleGrantPermissionRequest(
            name=_name(role, "role name"),
            perm=auth_pb2.Permission(
                permType=_permission_type(permission), key=start, range_end=end
            ),
        )
        await self._client._unary(rpcs.ROLE_GRANT_PERMISSION, request, timeout=timeout)

    async def role_revoke_permission(
        self,
        role: str,
        key: str | bytes,
        *,
        prefix: bool = False,
        from_key: bool = False,
        range_end: str | bytes | None = None,
        timeout: float | None = None,
    ) -> None:
        """Remove the permission of ``role`` on exactly the key or range it was granted on."""
        start, end = key_range(key, prefix=prefix, from_key=from_key, range_end=range_end)
        request = rpc_pb2.AuthRoleRevokePermissionRequest(
            role=_name(role, "role name"), key=start, range_end=end
        )
        await self._client._unary(rpcs.ROLE_REVOKE_PERMISSION, request, timeout=timeout)
