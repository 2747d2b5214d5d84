"""Auth against a real etcd with authentication on: root can do everything, a role-limited user
cannot leave its prefix, bad passwords fail clearly, and expired tokens (``--auth-token-ttl 2``)
are renewed without the caller noticing, for unary calls, watches and lease keepalives."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd import grpc
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.auth import AuthStatus, Permission, Role, User
from puregrpc_etcd.errors import AuthFailedError, EtcdError, PermissionDeniedError, RpcError
from puregrpc_etcd.testing import EtcdServer, etcd_version

ROOT_PASSWORD = "root-secret-Zq81"
ALICE_PASSWORD = "alice-secret-Kx42"
TOKEN_TTL = 2
# Simple tokens expire about a second after their TTL from their last use.
PAST_TOKEN_EXPIRY = TOKEN_TTL + 1.5


async def set_up_auth(endpoints: list[str]) -> None:
    async with etcd.connect(endpoints) as client:
        await client.auth.user_add("root", ROOT_PASSWORD)
        await client.auth.user_grant_role("root", "root")
        await client.auth.role_add("app")
        await client.auth.role_grant_permission("app", "readwrite", "app/", prefix=True)
        await client.auth.role_grant_permission("app", "read", "shared")
        await client.auth.user_add("alice", ALICE_PASSWORD)
        await client.auth.user_grant_role("alice", "app")
        await client.auth.enable()


@pytest.fixture(scope="module")
def server() -> Iterator[EtcdServer]:
    with EtcdServer(args=["--auth-token-ttl", str(TOKEN_TTL)]) as started:
        trio.run(set_up_auth, started.endpoints)
        yield started


def connect_as(server: EtcdServer, user: str, password: str) -> etcd.Client:
    return etcd.connect(server.endpoints, username=user, password=password)  # type: ignore[return-value]


async def auth_status(client: etcd.Client, server: EtcdServer) -> AuthStatus | None:
    """``auth.status()``, or None on etcd 3.4, which has no AuthStatus RPC (it came with 3.5) and
    says so with UNIMPLEMENTED."""
    if etcd_version(server.binary) >= (3, 5):
        return await client.auth.status()
    with pytest.raises(RpcError, match="UNIMPLEMENTED"):
        await client.auth.status()
    return None


async def test_root_can_do_everything(server: EtcdServer) -> None:
    async with connect_as(server, "root", ROOT_PASSWORD) as root:
        await root.put("anywhere/at/all", "root was here")
        await root.put("shared", "for everyone to read")
        assert await root.get_value("anywhere/at/all") == b"root was here"
        status = await auth_status(root, server)
        if status is not None:
            assert isinstance(status, AuthStatus)
            assert status.enabled
            assert status.auth_revision > 0
        assert {"root", "alice"} <= set(await root.auth.user_list())
        assert "app" in await root.auth.role_list()
        assert await root.auth.user_get("alice") == User(name="alice", roles=("app",))
        assert await root.auth.role_get("app") == Role(
            name="app",
            permissions=(
                Permission(type="readwrite", key=b"app/", range_end=b"app0"),
                Permission(type="read", key=b"shared", range_end=b""),
            ),
        )
        assert (await root.maintenance.status()).is_leader
        # The token rides on server streams too: Snapshot needs the root role.
        snapshot = io.BytesIO()
        assert await root.maintenance.snapshot(snapshot) == len(snapshot.getvalue()) > 0


async def test_role_limited_user_is_denied_outside_its_prefix(server: EtcdServer) -> None:
    async with connect_as(server, "alice", ALICE_PASSWORD) as alice:
        await alice.put("app/config", "mine")
        assert await alice.get_value("app/config") == b"mine"
        assert (await alice.get("app/", prefix=True)).count >= 1
        await alice.get("shared")
        with pytest.raises(PermissionDeniedError):
            await alice.put("shared", "read only for alice")
        with pytest.raises(PermissionDeniedError):
            await alice.put("other/key", "not hers")
        with pytest.raises(PermissionDeniedError):
            await alice.get("other/key")
        with pytest.raises(PermissionDeniedError):
            await alice.get("", prefix=True)
        with pytest.raises(PermissionDeniedError):
            await alice.auth.user_add("mallory", "pw")
        with pytest.raises(PermissionDeniedError):
            await alice.maintenance.defragment()
        with pytest.raises(PermissionDeniedError):
            await alice.maintenance.snapshot(io.BytesIO())
        # A denial does not poison the client.
        await alice.put("app/after", "still fine")


async def test_wrong_password_is_auth_failed_and_never_shown(
    server: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-password-Jw63"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthFailedError) as failed:
        async with connect_as(server, "alice", wrong) as alice:
            await alice.get("app/config")
    with pytest.raises(AuthFailedError):
        async with connect_as(server, "nobody", wrong) as nobody:
            await nobody.get("app/config")
    for text in (str(failed.value), repr(failed.value), caplog.text):
        assert wrong not in text
        assert ALICE_PASSWORD not in text


async def test_secrets_stay_out_of_reprs_and_logs(
    server: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with connect_as(server, "root", ROOT_PASSWORD) as root:
        await root.put("app/logged", "x")
        await root.auth.user_add("carol", "carol-secret-Pq55")
        try:
            shown = [repr(root), repr(await root.auth.user_get("carol"))]
            with pytest.raises(EtcdError) as duplicate:
                await root.auth.user_add("carol", "carol-secret-Pq55")
            shown += [str(duplicate.value), repr(duplicate.value)]
        finally:
            await root.auth.user_delete("carol")
    for text in [*shown, caplog.text]:
        assert ROOT_PASSWORD not in text
        assert "carol-secret-Pq55" not in text


async def test_user_and_role_administration(server: EtcdServer) -> None:
    async with connect_as(server, "root", ROOT_PASSWORD) as root:
        auth = root.auth
        await auth.user_add("bob", "bob-first")
        await auth.role_add("reports")
        await auth.role_grant_permission("reports", "write", "reports/a", range_end="reports/m")
        await auth.role_grant_permission("reports", "readwrite", "logs", from_key=True)
        await auth.user_grant_role("bob", "reports")
        assert await auth.user_get("bob") == User(name="bob", roles=("reports",))
        role = await auth.role_get("reports")
        assert Permission("write", b"reports/a", b"reports/m") in role.permissions
        assert Permission("readwrite", b"logs", b"\0") in role.permissions

        await auth.user_change_password("bob", "bob-second")
        async with connect_as(server, "bob", "bob-second") as bob:
            await bob.put("reports/b", "written by bob")
            await bob.put("logs/zzz", "from-key covers it")
            with pytest.raises(PermissionDeniedError):
                await bob.put("apps/x", "below logs, outside [reports/a, reports/m)")
        with pytest.raises(AuthFailedError):
            async with connect_as(server, "bob", "bob-first") as stale:
                await stale.get("reports/b")

        await auth.role_revoke_permission("reports", "logs", from_key=True)
        assert len((await auth.role_get("reports")).permissions) == 1
        await auth.user_revoke_role("bob", "reports")
        assert (await auth.user_get("bob")).roles == ()
        await auth.user_delete("bob")
        await auth.role_delete("reports")
        assert "bob" not in await auth.user_list()
        assert "reports" not in await auth.role_list()
        with pytest.raises(EtcdError):
            await auth.user_get("bob")


async def test_argument_errors_come_before_any_io(server: EtcdServer) -> None:
    async with connect_as(server, "root", ROOT_PASSWORD) as root:
        auth = root.auth
        with pytest.raises(ValueError, match="no_password"):
            await auth.user_add("dave")
        with pytest.raises(ValueError, match="not both"):
            await auth.user_add("dave", "pw", no_password=True)
        with pytest.raises(TypeError, match="bytes") as wrong_type:
            await auth.user_add("dave", b"secret-bytes-pw")  # type: ignore[arg-type]
        assert "secret-bytes-pw" not in str(wrong_type.value)
        with pytest.raises(ValueError, match="readwrite"):
            await auth.role_grant_permission("app", "everything", "k")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="empty"):
            await auth.role_add("")
        with pytest.raises(TypeError):
            await auth.role_grant_permission("app", "read", 5)  # type: ignore[arg-type]
        assert "dave" not in await auth.user_list()


async def test_expired_token_is_renewed_transparently(server: EtcdServer) -> None:
    async with connect_as(server, "alice", ALICE_PASSWORD) as alice:
        await alice.put("app/renew", "before")
        first_token = alice._caller.token
        assert first_token
        await trio.sleep(PAST_TOKEN_EXPIRY)
        # The token really has expired: the server refuses it when sent as it is.
        with pytest.raises(grpc.RpcError, match="invalid auth token"):
            await alice._caller.channel.unary_unary(
                "/etcdserverpb.KV/Range",
                rpc_pb2.RangeRequest(key=b"app/renew"),
                rpc_pb2.RangeResponse,
                metadata=[("token", first_token)],
            )
        assert await alice.get_value("app/renew") == b"before"
        assert alice._caller.token not in (None, first_token)
        await alice.put("app/renew", "after")
        assert await alice.get_value("app/renew") == b"after"


async def test_watch_and_lease_keepalive_survive_token_expiry(server: EtcdServer) -> None:
    # Nested rather than parenthesized: that form needs Python 3.10.
    async with connect_as(server, "alice", ALICE_PASSWORD) as alice:  # noqa: SIM117
        async with connect_as(server, "root", ROOT_PASSWORD) as root:
            with trio.fail_after(60):
                async with alice.lease(2) as lease, alice.watch("app/w/", prefix=True) as watcher:
                    await root.put("app/w/1", "one")
                    first = await watcher.__anext__()
                    assert first.kv.value == b"one"
                    # Long enough for the token to expire, and for the lease to need renewals.
                    await trio.sleep(PAST_TOKEN_EXPIRY)
                    await root.put("app/w/2", "two")
                    second = await watcher.__anext__()
                    assert second.kv.value == b"two"
                    # A watch created after the token expired must be accepted too.
                    await trio.sleep(PAST_TOKEN_EXPIRY)
                    async with alice.watch("app/w/late") as late:
                        await root.put("app/w/late", "late")
                        assert (await late.__anext__()).kv.value == b"late"
                    assert not lease.lost.is_set()
                    assert (await alice.time_to_live(lease.id)).ttl > 0
                    await alice.put("app/w/leased", "kept", lease=lease.id)
                assert not await alice.exists("app/w/leased")


async def test_enable_then_disable(etcd_server: EtcdServer) -> None:
    endpoints = etcd_server.endpoints
    # Credentials given while auth is off: the client carries on without a token.
    async with etcd.connect(endpoints, username="root", password=ROOT_PASSWORD) as root:
        status = await auth_status(root, etcd_server)
        assert status is None or not status.enabled
        await root.put("before", "auth")
        await root.auth.user_add("root", ROOT_PASSWORD)
        await root.auth.user_grant_role("root", "root")
        await root.auth.enable()
        # The next call finds auth on and logs in (on 3.4 the user_get below is that call).
        status = await auth_status(root, etcd_server)
        assert status is None or status.enabled
        assert (await root.auth.user_get("root")).roles == ("root",)
        async with etcd.connect(endpoints) as anonymous:
            with pytest.raises(EtcdError):
                await anonymous.put("anonymous", "refused")
            await root.auth.disable()
            await anonymous.put("anonymous", "accepted")
        status = await auth_status(root, etcd_server)
        assert status is None or not status.enabled
        assert await root.get_value("anonymous") == b"accepted"
