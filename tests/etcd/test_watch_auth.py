"""Watch with auth on, against a real etcd: a refused create raises on the watcher that asked
(and only there), and watchers, leases, locks, elections and mirrors carry on through an etcd
restart and through token expiry followed by a broken connection.

Since etcd 3.4.22 and 3.5.6 a refused create is answered with watch id -1 rather than the id the
client chose, and a restarted etcd forgets every simple token, so these tests mean something
only on such versions (3.5.30, 3.4.23); they must pass on 3.5.1 too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd.errors import PermissionDeniedError
from puregrpc_etcd.testing import EtcdServer

#: Simple tokens expire about this + 1 s after their last use.
TOKEN_TTL = 2
#: A refused watch must raise within this (it used to hang forever).
REFUSAL_BOUND = 5.0
#: Everything must work again within this after the server is back.
RECOVERY_BOUND = 30.0
#: Leases (and lock and election sessions) outlive the restart's downtime.
SESSION_TTL = 10


async def set_up_auth(endpoints: list[str]) -> None:
    async with etcd.connect(endpoints) as client:
        await client.auth.user_add("root", "rootpw")
        await client.auth.user_grant_role("root", "root")
        await client.auth.role_add("reads-a")
        await client.auth.role_grant_permission("reads-a", "read", "a/", prefix=True)
        await client.auth.user_add("reader", "readerpw")
        await client.auth.user_grant_role("reader", "reads-a")
        await client.auth.enable()


@pytest.fixture
def server() -> Iterator[EtcdServer]:
    with EtcdServer(args=["--auth-token-ttl", str(TOKEN_TTL)]) as started:
        trio.run(set_up_auth, started.endpoints)
        yield started


class ResettingProxy:
    """Relays loopback TCP connections to etcd; ``reset()`` closes every open one (a FIN to
    both sides), as a broken network path would, while etcd keeps running."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._relays: set[trio.CancelScope] = set()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def reset(self) -> int:
        for scope in self._relays:
            scope.cancel()
        return len(self._relays)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        await trio.serve_listeners(self._relay, listeners, task_status=task_status)

    async def _relay(self, client: trio.SocketStream) -> None:
        try:
            server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        except OSError:
            await client.aclose()
            return
        with trio.CancelScope() as scope:
            self._relays.add(scope)
            try:
                async with client, server, trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, client, server, scope)
                    nursery.start_soon(self._pump, server, client, scope)
            finally:
                self._relays.discard(scope)

    @staticmethod
    async def _pump(
        source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope
    ) -> None:
        try:
            while data := await source.receive_some(65536):
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()


@asynccontextmanager
async def proxy_to(server: EtcdServer) -> AsyncIterator[ResettingProxy]:
    proxy = ResettingProxy(int(server.endpoint.rsplit(":", 1)[1]))
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        yield proxy
        nursery.cancel_scope.cancel()


async def test_watch_without_read_permission_raises_promptly_and_alone(
    server: EtcdServer,
) -> None:
    async with (
        etcd.connect(server.endpoints, username="root", password="rootpw") as root,
        etcd.connect(server.endpoints, username="reader", password="readerpw") as reader,
        reader.watch("a/", prefix=True) as allowed,
    ):
        hub = reader._watch_hub
        assert hub is not None
        for forbidden in ({"key": "b/secret"}, {"key": "b/", "prefix": True}):
            began = trio.current_time()
            with trio.fail_after(REFUSAL_BOUND), pytest.raises(PermissionDeniedError):
                async with reader.watch(**forbidden):  # type: ignore[arg-type]
                    raise AssertionError("a watch without read permission was created")
            print(f"refused in {trio.current_time() - began:.3f} s")
        # The other watcher of the stream carried on, on the same stream.
        put = await root.put("a/x", "x")
        with trio.fail_after(10):
            event = await allowed.__anext__()
        assert (event.kv.key, event.kv.mod_revision) == (b"a/x", put.header.revision)
        assert hub.streams_opened == 1
        assert hub.attached == 1


@pytest.mark.parametrize("how", ["restart", "expiry-then-reset", "expiry-then-restart"])
@pytest.mark.slow
async def test_everything_carries_on_across_restart_and_token_expiry(
    server: EtcdServer, how: str
) -> None:
    async with (
        proxy_to(server) as proxy,
        # ``watching`` only watches: no other call of its own renews its token by chance.
        etcd.connect([proxy.endpoint], username="root", password="rootpw") as watching,
        etcd.connect([proxy.endpoint], username="root", password="rootpw") as a,
        etcd.connect([proxy.endpoint], username="root", password="rootpw") as b,
        etcd.connect(server.endpoints, username="root", password="rootpw") as writer,
        watching.watch("w/", prefix=True) as watcher,
        watching.mirror("m/") as mirror,
        a.lease(ttl=SESSION_TTL) as lease,
        trio.open_nursery() as nursery,
    ):
        got_lock = trio.Event()
        send_leader, leaders = trio.open_memory_channel[bytes](100)

        async def wait_for_lock() -> None:
            async with b.lock("L", ttl=SESSION_TTL):
                got_lock.set()

        async def observe() -> None:
            async for kv in b.election("E", ttl=SESSION_TTL).observe():
                await send_leader.send(kv.value)

        async def leader_becomes(value: bytes) -> None:
            with trio.fail_after(RECOVERY_BOUND):
                while await leaders.receive() != value:
                    pass

        async with a.lock("L", ttl=SESSION_TTL):
            nursery.start_soon(wait_for_lock)
            nursery.start_soon(observe)
            first = a.election("E", ttl=SESSION_TTL)
            async with first.campaign("one"):
                await leader_becomes(b"one")
                if how.startswith("expiry"):
                    await trio.sleep(TOKEN_TTL + 2)  # idle: every token has expired
                if how.endswith("reset"):
                    assert proxy.reset() >= 3
                else:
                    await trio.to_thread.run_sync(server.restart)
                # The watcher and the mirror resume, and see what is written after the break.
                began = trio.current_time()
                with trio.fail_after(RECOVERY_BOUND):
                    put = await writer.put("w/after", "1")
                    event = await watcher.__anext__()
                    assert (event.kv.key, event.revision) == (b"w/after", put.header.revision)
                    print(f"watch resumed in {trio.current_time() - began:.3f} s")
                    put = await writer.put("m/after", "2")
                    await mirror.wait_for(put.header.revision)
                    assert mirror.get("m/after") is not None
                # The token was renewed before the stream was opened again, so that no create
                # was refused on the way.
                assert watching._watch_hub is not None
                assert watching._watch_hub.creates_refused == 0
                assert not got_lock.is_set()
            # The leader resigned: a new one is elected and the observer sees it.
            async with b.election("E", ttl=SESSION_TTL).campaign("two"):
                await leader_becomes(b"two")
        # The holder released the lock: the waiter gets it.
        with trio.fail_after(RECOVERY_BOUND):
            await got_lock.wait()
        # The lease is kept alive: renewed (every TTL/3) since the break, not just restored.
        await trio.sleep(SESSION_TTL * 0.6)
        assert not lease.lost.is_set()
        assert (await writer.time_to_live(lease.id)).ttl > SESSION_TTL / 2
        nursery.cancel_scope.cancel()
