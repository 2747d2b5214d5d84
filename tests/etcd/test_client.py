"""connect() and Client against a real etcd 3.5: endpoint forms, environment, metadata, auth
call path, close-time jobs and what escapes the ``async with`` block."""

from __future__ import annotations

import socket
import sys

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.testing import EtcdServer

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:
    from exceptiongroup import BaseExceptionGroup


@pytest.mark.parametrize(
    "form",
    [
        lambda s: s.endpoint,
        lambda s: f"http://{s.endpoint}",
        lambda s: [s.endpoint],
        lambda s: f"127.0.0.1:1,{s.endpoint}",
        lambda s: ["http://127.0.0.1:1", f"http://{s.endpoint}"],
        lambda s: f"etcd://{s.endpoint}/?dial_timeout=2&command_timeout=5",
    ],
    ids=["host:port", "http", "list", "comma-separated", "list-with-dead-first", "etcd-url"],
)
async def test_endpoint_forms(server: EtcdServer, form: object) -> None:
    endpoints = form(server)  # type: ignore[operator]
    async with etcd.connect(endpoints, connect_timeout=2) as client:
        await client.put("forms/k", "v")
        assert await client.get_value("forms/k") == b"v"


async def test_etcd_url_sets_the_default_timeout(server: EtcdServer) -> None:
    async with etcd.connect(f"etcd://{server.endpoint}/?command_timeout=0.000000001") as client:
        assert client._caller.timeout == pytest.approx(1e-9)
        with pytest.raises(etcd.DeadlineExceededError):
            await client.get("k")


async def test_from_env(server: EtcdServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", f"http://127.0.0.1:1,http://{server.endpoint}")
    monkeypatch.setenv("ETCDCTL_DIAL_TIMEOUT", "2s")
    monkeypatch.setenv("ETCDCTL_COMMAND_TIMEOUT", "7s")
    async with etcd.Client.from_env() as client:
        assert client._caller.timeout == 7.0
        await client.put("env/k", "v")
        assert await client.get_value("env/k") == b"v"
    async with etcd.connect(from_env=True) as client:
        assert await client.get_value("env/k") == b"v"
    # With no endpoints at all, connect() also falls back to $ETCDCTL_ENDPOINTS.
    async with etcd.connect() as client:
        assert await client.get_value("env/k") == b"v"


async def test_require_leader_and_user_metadata(server: EtcdServer) -> None:
    async with etcd.connect(
        server.endpoints, require_leader=True, metadata=[("x-app", "tests")]
    ) as client:
        assert ("hasleader", "true") in client._caller.metadata
        assert ("x-app", "tests") in client._caller.metadata
        await client.put("meta/k", "v")
        assert await client.get_value("meta/k") == b"v"


async def test_nothing_reachable(server: EtcdServer) -> None:
    async with etcd.connect(
        "127.0.0.1:1", connect_timeout=1, retries=2, retry_backoff=(0.01, 0.02)
    ) as client:
        with pytest.raises(etcd.ConnectionFailedError) as caught:
            await client.get("k")
        assert "127.0.0.1:1" in str(caught.value)
        with pytest.raises(etcd.UnavailableError):
            await client.put("k", "v")


async def test_closers_run_in_reverse_and_errors_in_them_do_not_stop_the_rest(
    server: EtcdServer,
) -> None:
    ran: list[str] = []
    async with etcd.connect(server.endpoints) as client:

        async def first() -> None:
            await client.put("closers/first", "ran")  # the connection still works here
            ran.append("first")

        async def broken() -> None:
            ran.append("broken")
            raise RuntimeError("a closer failed")

        async def stuck() -> None:
            ran.append("stuck")
            await trio.sleep_forever()

        client._caller.closers.extend([first, broken, stuck])
    assert ran == ["stuck", "broken", "first"]
    async with etcd.connect(server.endpoints) as client:
        assert await client.get_value("closers/first") == b"ran"


async def test_errors_in_the_block_come_out_unwrapped(server: EtcdServer) -> None:
    async def raise_in_block() -> None:
        async with etcd.connect(server.endpoints) as client:
            await client.put("unwrap/k", "v")
            raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        await raise_in_block()
    with pytest.raises(etcd.FutureRevisionError):
        async with etcd.connect(server.endpoints) as client:
            await client.get("unwrap/k", revision=10**9)


async def test_a_group_raised_in_the_block_comes_out_as_it_went_in(server: EtcdServer) -> None:
    raised: list[BaseException] = []

    async def fail() -> None:
        raise ValueError("in a task of the caller's nursery")

    async def block() -> None:
        async with etcd.connect(server.endpoints) as client:
            await client.put("groups/k", "v")
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(fail)
            except BaseExceptionGroup as group:
                raised.append(group)
                raise

    with pytest.raises(BaseExceptionGroup) as caught:
        await block()
    # The same group: trio's nurseries copy a group on its way through (``split``), so it is
    # an equal copy holding the very same exception, not bare ValueError nor a deeper nesting.
    [ours] = raised
    assert type(caught.value) is type(ours)
    assert caught.value.message == ours.message
    [inner] = caught.value.exceptions
    assert inner is ours.exceptions[0]


async def test_connect_timeout_given_wins_over_the_url_and_env(
    server: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"etcd://{server.endpoint}/?dial_timeout=7"
    async with etcd.connect(url, connect_timeout=5.0) as client:
        assert client._caller.channel.connect_timeout == 5.0
    async with etcd.connect(url) as client:
        assert client._caller.channel.connect_timeout == 7.0
    async with etcd.connect(server.endpoints) as client:
        assert client._caller.channel.connect_timeout == 5.0
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", server.endpoint)
    monkeypatch.setenv("ETCDCTL_DIAL_TIMEOUT", "3s")
    async with etcd.connect(from_env=True, connect_timeout=5.0) as client:
        assert client._caller.channel.connect_timeout == 5.0
    async with etcd.connect(from_env=True) as client:
        assert client._caller.channel.connect_timeout == 3.0
        await client.put("dial/k", "v")


async def test_every_timeout_is_checked_before_any_io() -> None:
    with socket.socket() as bound:  # bound, not listening: any I/O would fail to connect
        bound.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{bound.getsockname()[1]}"
        async with etcd.connect(endpoint, retries=0) as client:
            for timeout, error in ((0, ValueError), (-1, ValueError), ("x", TypeError)):
                with pytest.raises(error, match="timeout"):
                    await client.get("k", timeout=timeout)  # type: ignore[arg-type]
                with pytest.raises(error, match="timeout"):
                    await client.put("k", "v", timeout=timeout)  # type: ignore[arg-type]
                with pytest.raises(error, match="timeout"):
                    async with client._stream(
                        rpcs.WATCH,
                        timeout=timeout,  # type: ignore[arg-type]
                    ):
                        pass
                with pytest.raises(error, match="timeout"):
                    async with client.mirror("m/", timeout=timeout):  # type: ignore[arg-type]
                        pass
            with pytest.raises(etcd.ConnectionFailedError):
                await client.get("k", timeout=5)
        for options, error in (
            ({"connect_timeout": 0}, ValueError),
            ({"connect_timeout": True}, TypeError),
            ({"timeout": float("nan")}, ValueError),
        ):
            with pytest.raises(error, match="timeout"):
                async with etcd.connect(endpoint, **options):  # type: ignore[arg-type]
                    pass


async def test_cancelling_the_block_from_outside(server: EtcdServer) -> None:
    with trio.move_on_after(0.2) as scope:
        async with etcd.connect(server.endpoints) as client:
            await client.put("outside/k", "v")
            await trio.sleep_forever()
    assert scope.cancelled_caught


async def test_repr_and_argument_checks(server: EtcdServer) -> None:
    async with etcd.connect(server.endpoints) as client:
        await client.get_value("repr/k")
        assert server.endpoint in repr(client)
    for bad in (
        {"retries": -1},
        {"retry_backoff": (2.0, 1.0)},
        {"timeout": 0},
        {"password": "pw"},
    ):
        with pytest.raises(ValueError):
            async with etcd.connect(server.endpoints, **bad):  # type: ignore[arg-type]
                pass
    with pytest.raises(TypeError):
        async with etcd.connect(server.endpoints, tls="yes"):  # type: ignore[arg-type]
            pass


ROOT_PASSWORD = "r00t-s3cret"


async def enable_auth(endpoints: list[str]) -> None:
    async with etcd.connect(endpoints) as client:
        await client._unary(
            rpcs.USER_ADD, rpc_pb2.AuthUserAddRequest(name="root", password=ROOT_PASSWORD)
        )
        await client._unary(
            rpcs.USER_GRANT_ROLE, rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root")
        )
        await client._unary(rpcs.AUTH_ENABLE, rpc_pb2.AuthEnableRequest())


async def test_auth_token_on_every_call_and_reauthentication() -> None:
    async with EtcdServer(args=["--auth-token", "simple", "--auth-token-ttl", "1"]) as secured:
        async with etcd.connect(secured.endpoints, username="root", password="x") as client:
            # Auth is not enabled yet: the client carries on without a token.
            await client.put("auth/k", "before")
            assert client._caller.token is None
        await enable_auth(secured.endpoints)
        async with etcd.connect(secured.endpoints) as anonymous:
            with pytest.raises(etcd.AuthFailedError, match="user name is empty"):
                await anonymous.get("auth/k")
        with pytest.raises(etcd.AuthFailedError) as caught:
            async with etcd.connect(secured.endpoints, username="root", password="wrong"):
                pass
        assert "wrong" not in repr(caught.value)
        async with etcd.connect(f"etcd://root:{ROOT_PASSWORD}@{secured.endpoint}/") as client:
            token = client._caller.token
            assert token
            assert token not in repr(client)
            assert ROOT_PASSWORD not in repr(client)
            assert await client.get_value("auth/k") == b"before"
            # Simple tokens expire about ttl + 1 s after their last use.
            await trio.sleep(3.5)
            await client.put("auth/k", "after")
            assert client._caller.token != token
            assert await client.get_value("auth/k") == b"after"
            async with client._stream(rpcs.WATCH) as s:
                await s.send_message(
                    rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"auth/k"))
                )
                with trio.fail_after(10):
                    reply = await s.receive_message()
                assert reply is not None
                assert reply.created


async def test_a_cancelled_scope_around_the_client_still_releases_locks_and_leases(
    server: EtcdServer,
) -> None:
    # The caller's scope is cancelled while the client holds a lock and a lease: the close-time
    # work (delete the lock key, revoke the lease) still needs a live connection.
    with trio.move_on_after(0.5) as scope:
        async with etcd.connect(server.endpoints) as client:  # noqa: SIM117 - 3.9 syntax
            async with client.lock("cancelled-scope/lock"), client.lease(60) as lease:
                await client.put("cancelled-scope/held", "1", lease=lease.id)
                await trio.sleep_forever()
    assert scope.cancelled_caught
    async with etcd.connect(server.endpoints) as client:
        assert (await client.get("cancelled-scope/", prefix=True)).kvs == []
        assert lease.id not in await client.leases()
