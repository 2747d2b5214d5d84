"""The asyncio face against a real etcd: the everyday scenarios, cancellation and timeouts
(the stream is reset, the connection stays), many tasks on one client, exit and fork in
subprocesses; on uvloop too where it is installed."""

from __future__ import annotations

import asyncio
import gc
import platform
import signal
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Coroutine
from typing import Any, Callable

import pytest
from face_scripts import SCRIPT_TIMEOUT, start_script

import puregrpc_etcd as etcd
from puregrpc_etcd import aio
from puregrpc_etcd.testing import EtcdServer

uvloop: Any
try:
    import uvloop
except ImportError:  # optional: the loops the tests run on are the ones installed
    uvloop = None

LOOPS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])


def test_uvloop_is_among_the_loops() -> None:
    """uvloop is a test dependency where it exists (CPython, not Windows): without it the tests
    above silently ran on asyncio's own loop alone."""
    if platform.python_implementation() == "CPython" and sys.platform != "win32":
        assert LOOPS == ["asyncio", "uvloop"]
    else:
        assert LOOPS[0] == "asyncio"


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine to completion on a fresh loop of the kind under test."""
    if request.param == "uvloop":
        assert uvloop is not None
        return uvloop.run  # type: ignore[no-any-return,unused-ignore]
    return asyncio.run


def open_streams(client: aio.Client) -> int:
    """HTTP/2 streams open on the client's connection (read across threads: an int)."""
    connection = client._target._caller.channel._connector.connection
    assert connection is not None
    return connection.protocol.open_streams  # type: ignore[no-any-return]


async def settles(condition: Callable[[], bool], bound: float = 5.0) -> bool:
    for _ in range(int(bound / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


def test_configuration_and_txn(server: EtcdServer, run: Any) -> None:
    async def main() -> None:
        async with aio.connect(server.endpoints) as client:
            await client.put("cfg/app/name", "MyApp")
            await client.put_json("cfg/app/limits", {"workers": 4})
            assert await client.get_value("cfg/app/name") == b"MyApp"
            assert await client.get_json("cfg/app/limits") == {"workers": 4}
            keys = [kv.key async for kv in client.scan("cfg/", page_size=1)]
            assert keys == [b"cfg/app/limits", b"cfg/app/name"]
            response = await client.txn(
                [etcd.Compare.value("cfg/app/name") == b"MyApp"],
                [etcd.Op.put("cfg/app/name", "Other")],
                [etcd.Op.get("cfg/app/name")],
            )
            assert response.succeeded
            assert (await client.delete("cfg/", prefix=True)).deleted == 2
            with pytest.raises(TypeError):
                await client.put("k", 12)
            with pytest.raises(etcd.LeaseNotFoundError):
                await client.put("k", "v", lease=0x1234)

    run(main())


def test_service_registration_watch_and_views(server: EtcdServer, run: Any) -> None:
    async def main() -> None:
        client = await aio.connect(server.endpoints)
        try:
            async with client.watch("services/", prefix=True) as watcher:
                async with client.lease(5) as lease:
                    await client.put("services/api/1", "10.0.0.1:80", lease=lease.id)
                    assert (await client.time_to_live(lease.id)).ttl > 0
                events = [event async for event in _take(watcher, 2)]
            assert [(e.type, e.kv.key) for e in events] == [
                ("put", b"services/api/1"),
                ("delete", b"services/api/1"),  # revoked on leaving the block
            ]
            start = events[0].kv.mod_revision
            async for event in client.watch("services/", prefix=True, start_revision=start):
                assert event.kv.key == b"services/api/1"
                break  # leaving the loop closes the watcher (asyncio's generator finalizer)
            hub = client._target._caller.watch_hub
            assert await settles(lambda: (gc.collect(), hub.attached)[1] == 0)
            async with client.mirror("mirrored/") as mirror:
                revision = (await client.put("mirrored/x", "1")).header.revision
                assert await mirror.wait_for(revision) >= revision
                assert [key for key, _ in mirror.items()] == [b"mirrored/x"]
            election = client.election("elections/e")
            async with election.campaign("me"):
                leader = await election.leader()
                assert leader is not None
                assert leader.value == b"me"
            view = client.namespace("tenant/")
            await view.put("k", "v")
            assert await client.get_value("tenant/k") == b"v"
            assert (await client.maintenance.status()).version
            assert await client.cluster.members()
        finally:
            await client.aclose()

    run(main())


async def _take(watcher: aio.Watcher, count: int) -> Any:
    async for event in watcher:
        yield event
        count -= 1
        if count == 0:
            return


def test_three_workers_take_a_lock(server: EtcdServer, run: Any) -> None:
    holders: list[int] = []
    overlaps: list[int] = []

    async def worker(number: int) -> None:
        async with aio.connect(server.endpoints) as client:
            for _ in range(3):
                async with client.lock("locks/nightly", ttl=10) as lock:
                    holders.append(number)
                    if len(holders) > 1:
                        overlaps.append(number)
                    assert await client.get_value(lock.key) is not None
                    await asyncio.sleep(0.01)
                    holders.remove(number)

    async def main() -> None:
        await asyncio.gather(*(worker(n) for n in range(3)))
        async with aio.connect(server.endpoints) as client:
            assert (await client.get("locks/nightly/", prefix=True)).count == 0
            async with client.try_lock("locks/try") as held:
                assert held is not None
                assert await client.try_lock("locks/try") is None
            again = await client.try_lock("locks/try")
            assert again is not None
            assert await again.release()

    run(main())
    assert not overlaps


def test_many_tasks_share_one_client(server: EtcdServer, run: Any) -> None:
    async def main() -> None:
        async with aio.connect(server.endpoints) as client:
            await asyncio.gather(*(client.put(f"tasks/{n}", str(n)) for n in range(128)))
            values = await asyncio.gather(*(client.get_value(f"tasks/{n}") for n in range(128)))
            assert values == [str(n).encode() for n in range(128)]

    run(main())


async def _blocked_lock_rpc(client: aio.Client, name: str) -> tuple[int, Any]:
    """Hold ``name`` with the v3lock RPC; give the stream count and a second, blocked call."""
    holder = await client.grant(30)
    await client.lock_rpc(name, holder.id)
    baseline = open_streams(client)
    waiter = await client.grant(30)
    blocked = asyncio.ensure_future(client.lock_rpc(name, waiter.id))
    assert await settles(lambda: open_streams(client) == baseline + 1)
    return baseline, blocked


def test_cancelling_the_task_resets_the_stream(server: EtcdServer, run: Any) -> None:
    async def main() -> None:
        async with aio.connect(server.endpoints) as client:
            baseline, blocked = await _blocked_lock_rpc(client, f"locks/cancel-{uuid.uuid4()}")
            connection = client._target._caller.channel._connector.connection
            blocked.cancel()
            with pytest.raises(asyncio.CancelledError):
                await blocked
            assert await settles(lambda: open_streams(client) == baseline)
            # The same connection carries the next call.
            assert await client.get_value("locks/nothing") is None
            assert client._target._caller.channel._connector.connection is connection

    run(main())


def test_wait_for_and_timeout_are_deadlines(server: EtcdServer, run: Any) -> None:
    async def main() -> None:
        async with aio.connect(server.endpoints) as client:
            name = f"locks/deadline-{uuid.uuid4()}"
            baseline, blocked = await _blocked_lock_rpc(client, name)
            blocked.cancel()
            holder = await client.grant(30)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.lock_rpc(name, holder.id), 0.3)
            assert await settles(lambda: open_streams(client) == baseline)
            if sys.version_info >= (3, 11):
                with pytest.raises(TimeoutError):
                    await _lock_within(client, name, 0.3)
                # Only the holder's key: the waiting one went with the cancelled wait.
                assert (await client.get(name + "/", prefix=True)).count == 1
            # An explicit timeout= is the trio client's, sent as grpc-timeout: either side may
            # end the call first (etcd's v3lock says "context deadline exceeded").
            with pytest.raises(etcd.RpcError) as raised:
                await client.lock_rpc(name, holder.id, timeout=0.3)
            error = raised.value
            assert isinstance(error, etcd.DeadlineExceededError) or (
                error.details == "context deadline exceeded"
            )
            assert await client.get_value("locks/nothing") is None

    run(main())


def test_a_lock_taken_as_its_task_is_cancelled_is_released_first(
    server: EtcdServer, run: Any
) -> None:
    """The trio side takes the lock while the loop is busy, then the task is cancelled: once
    the task has ended the lock is released (as on the blocking face), not some time later."""

    async def main() -> None:
        async with aio.connect(server.endpoints) as client:
            for _ in range(5):
                name = f"locks/taken-{uuid.uuid4()}"

                async def hold(name: str = name) -> None:
                    async with client.lock(name, ttl=10):
                        await asyncio.sleep(SCRIPT_TIMEOUT)

                task = asyncio.ensure_future(hold())
                await asyncio.sleep(0)  # it asks for the lock
                time.sleep(0.3)  # noqa: ASYNC251  # the loop is busy: the lock is taken meanwhile
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert (await client.get(name + "/", prefix=True)).count == 0

    run(main())


def test_a_lock_taken_for_a_cancelled_await_is_released(server: EtcdServer, run: Any) -> None:
    """``await client.try_lock(name)`` and ``acquire_lock`` cancelled after the trio side took
    the lock: the lock nobody can release any more is released (it stayed taken, with its
    session lease kept alive, until the client closed)."""

    async def main() -> None:
        async with aio.connect(server.endpoints) as client, client.lease(30) as lease:
            for take in (
                client.try_lock,
                lambda name: client.acquire_lock(name, lease),
            ):
                name = f"locks/discarded-{uuid.uuid4()}"
                task = asyncio.ensure_future(take(name))
                await asyncio.sleep(0)  # it asks for the lock
                time.sleep(0.3)  # noqa: ASYNC251  # the loop is busy: the lock is taken meanwhile
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert (await client.get(name + "/", prefix=True)).count == 0

    run(main())


async def _lock_within(client: aio.Client, name: str, seconds: float) -> None:
    async with asyncio.timeout(seconds), client.lock(name, ttl=10):  # type: ignore[attr-defined]
        raise AssertionError("the lock is held elsewhere")


def test_ctrl_c_cancels_a_waiting_call(server: EtcdServer) -> None:
    async def hold() -> None:
        async with aio.connect(server.endpoints) as client, client.lock("locks/aio-ctrl-c"):
            child = start_script(
                """
                import asyncio, sys
                from puregrpc_etcd import aio, sync

                async def main():
                    async with aio.connect(sys.argv[1]) as client:
                        print("ready", flush=True)
                        async with client.lock("locks/aio-ctrl-c", ttl=10):
                            print("acquired?!", flush=True)

                try:
                    asyncio.run(main())
                except KeyboardInterrupt:
                    with sync.connect(sys.argv[1]) as check:  # the waiter's key is gone
                        print("interrupted", check.get("locks/aio-ctrl-c/", prefix=True).count)
                """,
                server.endpoints[0],
            )
            assert child.stdout is not None
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, child.stdout.readline) == "ready\n"
            await asyncio.sleep(0.5)  # let it wait for the lock
            child.send_signal(signal.SIGINT)
            out, err = await loop.run_in_executor(None, child.communicate, None, SCRIPT_TIMEOUT)
            assert child.returncode == 0, err
            assert out == "interrupted 1\n"  # only our key: the child's waiter was removed

    asyncio.run(hold())


def test_an_observer_left_with_break_ends(server: EtcdServer, run: Any) -> None:
    """A bare ``async for`` over ``observe()`` left with ``break`` drops the trio observer,
    whose finaliser ends it, as on trio (the portal's idle runner kept its last call, and so the
    observer, until it ran another call: its Observe stream stayed open)."""

    async def main() -> None:
        async with aio.connect(server.endpoints) as client:
            election = client.election(f"elections/{uuid.uuid4()}")
            async with election.campaign("v1"):
                observer = election.observe()
                trio_observer = weakref.ref(observer._target)
                async for leader in observer:
                    assert leader.value == b"v1"
                    break
                del observer
                assert await settles(lambda: (gc.collect(), trio_observer())[1] is None)

    run(main())


def test_closing_ends_the_thread(server: EtcdServer, run: Any) -> None:
    async def main() -> None:
        before = set(threading.enumerate())
        for _ in range(10):
            async with aio.connect(server.endpoints) as client:
                await client.get("k")
            # Not only told to end: ended (a thread-leak check right after aclose sees nothing).
            assert set(threading.enumerate()) <= before

    run(main())


def test_closing_an_observer_of_a_closed_client_does_nothing(server: EtcdServer) -> None:
    """As on trio: ``close()``, ``aclose()`` (and leaving ``async with``) end an observer, and
    there is nothing to end once its client is closed (they raised ClientClosedError)."""

    async def main() -> None:
        client = await aio.connect(server.endpoints)
        observer = client.election("elections/closed").observe()
        await client.aclose()
        observer.close()
        await observer.aclose()
        async with observer:
            pass

    asyncio.run(main())


def test_closed_client_raises(server: EtcdServer) -> None:
    async def main() -> None:
        client = await aio.connect(server.endpoints)
        await client.aclose()
        with pytest.raises(aio.ClientClosedError):
            await client.get("k")

    asyncio.run(main())


def test_fork_child_leaves_blocks_and_closes_the_parents_client(server: EtcdServer) -> None:
    """In the child (on an asyncio loop of its own), leaving a block entered before the fork
    and closing the parent's client return at once: no loop thread to wait for there."""
    child = start_script(
        """
        import asyncio, os, signal, sys, warnings
        from puregrpc_etcd import aio
        warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)

        async def in_child(client, held):
            await held.__aexit__(None, None, None)
            await client.aclose()
            return 0

        async def main():
            client = await aio.connect(sys.argv[1])
            held = client.lease(30)
            lease = await held.__aenter__()
            pid = os.fork()
            if pid == 0:
                signal.alarm(20)  # a hang ends the child (exit code -14) rather than the test
                os._exit(asyncio.run(in_child(client, held)))
            _, status = os.waitpid(pid, 0)
            alive = (await client.time_to_live(lease.id)).ttl > 0
            print(os.waitstatus_to_exitcode(status), alive, flush=True)
            await held.__aexit__(None, None, None)
            await client.aclose()

        asyncio.run(main())
        """,
        server.endpoints[0],
    )
    out, err = child.communicate(timeout=SCRIPT_TIMEOUT)
    assert child.returncode == 0, err
    assert out == "0 True\n"  # the child left at once; the parent's lease is still alive


def test_exit_with_an_open_client_and_fork(server: EtcdServer) -> None:
    child = start_script(
        """
        import asyncio, os, sys, warnings
        from puregrpc_etcd import aio

        # CPython 3.12+ warns of any fork in a process with threads (the client has one).
        warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)

        async def in_child():
            try:
                await client.get("k")
            except aio.ForkedError:
                async with aio.connect(sys.argv[1]) as fresh:
                    await fresh.put("aio-exit/child", "1")
                return 0
            return 1

        async def main():
            global client
            client = await aio.connect(sys.argv[1])
            lease = await client.lease(30).__aenter__()
            await client.put("aio-exit/registered", "x", lease=lease.id)
            pid = os.fork()
            if pid == 0:
                os._exit(asyncio.run(in_child()))
            _, status = os.waitpid(pid, 0)
            print(os.waitstatus_to_exitcode(status), flush=True)

        asyncio.run(main())
        """,
        server.endpoints[0],
    )
    out, err = child.communicate(timeout=SCRIPT_TIMEOUT)
    assert child.returncode == 0, err
    assert out == "0\n"
    assert err == ""

    async def check() -> None:
        async with aio.connect(server.endpoints) as client:
            assert await client.get_value("aio-exit/child") == b"1"
            # Closing at exit revoked the lease, so its key is gone at once.
            assert await client.get_value("aio-exit/registered") is None

    asyncio.run(check())
