"""A kept lease counts as lost no later than etcd lets it expire, when its renewals are held up.

Answers that come back late (a loopback proxy delays them) must not stretch the client's idea of
the lease; a SIGSTOPped member must cost the lease (and a lock on it) within its TTL.
"""

from __future__ import annotations

import math
import os
import signal
from functools import partial

import pytest
import trio

from puregrpc_etcd.client import Client, connect
from puregrpc_etcd.errors import LockLostError
from puregrpc_etcd.lock import Lock
from puregrpc_etcd.testing import EtcdServer


class SlowReplyProxy:
    """Forwards loopback TCP connections to ``target_port``; the server's bytes reach the
    client ``reply_delay`` seconds late (in order), and once ``drop_requests`` is set the
    client's bytes are read and dropped (no FIN, no RST), as behind a black hole."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.reply_delay = 0.0
        self.drop_requests = False

    async def relay(self, client: trio.SocketStream) -> None:
        server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        send, receive = trio.open_memory_channel[tuple[float, bytes]](1000)
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(self._requests, client, server)
            nursery.start_soon(self._replies, server, send)
            nursery.start_soon(self._deliver, receive, client)

    async def _requests(self, client: trio.SocketStream, server: trio.SocketStream) -> None:
        while data := await client.receive_some(65536):
            if not self.drop_requests:
                await server.send_all(data)
        await trio.sleep_forever()

    async def _replies(
        self, server: trio.SocketStream, send: trio.MemorySendChannel[tuple[float, bytes]]
    ) -> None:
        while data := await server.receive_some(65536):
            await send.send((trio.current_time() + self.reply_delay, data))
        await trio.sleep_forever()

    async def _deliver(
        self, receive: trio.MemoryReceiveChannel[tuple[float, bytes]], client: trio.SocketStream
    ) -> None:
        async for when, data in receive:
            await trio.sleep_until(when)
            await client.send_all(data)


async def _deleted_at(watching: Client, key: str, after: int) -> float:
    """When the delete of ``key`` after revision ``after`` reached a direct client."""
    async with watching.watch(key, start_revision=after + 1) as watcher:
        async for event in watcher:
            assert event.type == "delete"
            return trio.current_time()
    raise AssertionError("the watch ended")


@pytest.mark.slow
async def test_late_answers_do_not_stretch_the_lease_past_its_expiry(server: EtcdServer) -> None:
    ttl = 5
    proxy = SlowReplyProxy(server.client_port)
    async with trio.open_nursery() as nursery, connect(server.endpoints) as direct:
        listeners = await nursery.start(partial(trio.serve_tcp, proxy.relay, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with (
            connect(f"127.0.0.1:{port}") as client,
            client.lease(ttl) as lease,
        ):
            put = await client.put("late/key", "v", lease=lease.id)
            await trio.sleep(ttl / 3 + 0.5)  # renewals going out and answered promptly
            # Answers now take 2.5 s back: the next renewal and its retries (every 0.5 s) all
            # reach etcd, which counts the TTL from each, while their answers are on the way.
            proxy.reply_delay = 2.5
            await trio.sleep(2.5)
            # Then etcd hears nothing more: it expires the lease TTL after the last renewal it
            # got, while the late answers still arrive for up to 2.5 s.
            proxy.drop_requests = True
            cut = trio.current_time()
            lost_at = gone_at = 0.0

            keeper = client._caller.lease_keeper
            assert keeper is not None
            deadlines = [keeper._schedule.next_deadline()]

            async def wait_lost() -> None:
                # The deadline moves as the late answers come in; the last one is when the
                # lease counts as lost (seen a moment later, when the task runs).
                nonlocal lost_at
                while not lease.lost.is_set():
                    deadlines.append(keeper._schedule.next_deadline())
                    with trio.move_on_after(0.1):
                        await lease.lost.wait()
                lost_at = trio.current_time()

            async def wait_gone() -> None:
                nonlocal gone_at
                gone_at = await _deleted_at(direct, "late/key", put.header.revision)

            with trio.fail_after(ttl + 10):
                async with trio.open_nursery() as waiters:
                    waiters.start_soon(wait_lost)
                    waiters.start_soon(wait_gone)
            # Counted from the arrival of the late answers, the client would hold the lease
            # about 2.5 s after etcd deleted its key.
            deadline = max(when for when in deadlines if when < math.inf)
            assert deadline <= gone_at, (deadline - cut, gone_at - cut)
            assert deadline <= cut + ttl
            assert deadline <= lost_at
            print(
                f"deadline {deadline - cut:.2f} s, lost seen {lost_at - cut:.2f} s,"
                f" key gone {gone_at - cut:.2f} s after the cut"
            )
        nursery.cancel_scope.cancel()


class FrozenHolder:
    """Holds a lock, freezes its (only) etcd member, and notes when the lock was lost."""

    def __init__(self, client: Client, pid: int, ttl: int) -> None:
        self.client = client
        self.pid = pid
        self.ttl = ttl
        self.lock: Lock | None = None
        self.stopped_at = self.deadline = self.lost_at = math.inf

    async def hold(self) -> None:
        async with self.client.lock("stop/lock", ttl=self.ttl) as lock:
            self.lock = lock
            os.kill(self.pid, signal.SIGSTOP)
            self.stopped_at = trio.current_time()
            # No renewal reaches etcd from now on, so it expires the lease at most TTL after
            # this: the lock must be given up by then (the block is cancelled), while etcd is
            # still frozen and cannot have let it go. Every answer the client counts from was
            # to a renewal etcd handled before it froze, so the deadline cannot be later (the
            # loss itself is seen a moment after the deadline, when the task runs).
            try:
                await trio.sleep(self.ttl / 2)
                keeper = self.client._caller.lease_keeper
                assert keeper is not None
                self.deadline = keeper._schedule.next_deadline()
                await trio.sleep(self.ttl + 5)
            finally:
                self.lost_at = trio.current_time()


async def test_a_stopped_member_costs_the_lock_within_its_ttl() -> None:
    ttl = 3
    with EtcdServer() as stopped:
        async with connect(stopped.endpoints) as client:
            assert stopped.pid is not None
            holder = FrozenHolder(client, stopped.pid, ttl)
            try:
                with pytest.raises(LockLostError):
                    await holder.hold()
                await trio.sleep(max(0.0, holder.stopped_at + ttl + 1 - trio.current_time()))
            finally:
                os.kill(stopped.pid, signal.SIGCONT)
            continued_at = trio.current_time()
            lock = holder.lock
            assert lock is not None
            assert lock.lost.is_set()
            assert holder.deadline <= holder.stopped_at + ttl
            assert holder.deadline <= holder.lost_at < continued_at
            with trio.fail_after(10):
                await _deleted_at(client, lock.key.decode(), lock.revision)
            assert (await client.time_to_live(lock.lease_id)).ttl == -1
            print(
                f"deadline {holder.deadline - holder.stopped_at:.2f} s, lock lost"
                f" {holder.lost_at - holder.stopped_at:.2f} s after SIGSTOP (ttl {ttl} s)"
            )
