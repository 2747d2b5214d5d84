"""The blocking face against a real etcd: the everyday scenarios, many threads on one client,
Ctrl-C, fork and interpreter exit (the last three in subprocesses)."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
import weakref
from typing import Callable, Iterator

import pytest
from face_scripts import SCRIPT_TIMEOUT, start_script

import puregrpc_etcd as etcd
from puregrpc_etcd import sync
from puregrpc_etcd.testing import EtcdServer


@pytest.fixture
def client(server: EtcdServer) -> Iterator[sync.Client]:
    with sync.connect(server.endpoints) as connected:
        yield connected


def run_threads(target: Callable[[int], None], count: int) -> None:
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SCRIPT_TIMEOUT)
        assert not thread.is_alive()


def test_configuration(client: sync.Client) -> None:
    client.put("cfg/app/name", "MyApp")
    client.put_json("cfg/app/limits", {"workers": 4})
    assert client.get_value("cfg/app/name") == b"MyApp"
    assert client.get_json("cfg/app/limits") == {"workers": 4}
    assert sorted(client.get_prefix("cfg/app/")) == [b"cfg/app/limits", b"cfg/app/name"]
    assert [kv.key for kv in client.scan("cfg/", page_size=1)] == sorted(client.get_prefix("cfg/"))
    assert client.delete("cfg/", prefix=True).deleted == 2
    assert client.get_value("cfg/app/name", b"none") == b"none"


def test_errors_are_the_trio_clients(client: sync.Client) -> None:
    with pytest.raises(TypeError):
        client.put("k", 12)
    with pytest.raises(etcd.LeaseNotFoundError):
        client.put("k", "v", lease=0x1234)
    revision = client.put("compacted", "v").header.revision
    client.put("compacted", "w")
    client.compact(revision + 1)
    with pytest.raises(etcd.CompactedError):
        client.get("compacted", revision=revision)


def test_service_registration_on_a_lease(server: EtcdServer, client: sync.Client) -> None:
    with sync.connect(server.endpoints) as observer:
        with client.lease(5) as lease:
            client.put("services/api/1", "10.0.0.1:80", lease=lease.id)
            assert observer.get_value("services/api/1") == b"10.0.0.1:80"
            assert observer.time_to_live(lease.id).ttl > 0
            assert not lease.lost.is_set()
        # Leaving the block revoked the lease and with it the key.
        assert observer.get_value("services/api/1") is None


def test_watch(client: sync.Client) -> None:
    start = client.put("watched/a", "1").header.revision
    client.put("watched/b", "2")
    client.delete("watched/a")
    seen = []
    for event in client.watch("watched/", prefix=True, start_revision=start):
        seen.append((event.type, event.kv.key))
        if len(seen) == 3:
            break  # leaving the loop closes the watcher
    assert seen == [("put", b"watched/a"), ("put", b"watched/b"), ("delete", b"watched/a")]
    gc.collect()  # PyPy closes the dropped iterator when collected, CPython at once
    assert client._target._caller.watch_hub.attached == 0
    with client.watch("watched/", prefix=True) as watcher:
        client.put("watched/c", "3")
        event = next(iter(watcher))
        assert event.kv.value == b"3"
        assert watcher.revision == event.kv.mod_revision


def test_three_workers_take_a_lock(server: EtcdServer) -> None:
    holders: list[int] = []
    overlaps: list[int] = []
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            with sync.connect(server.endpoints) as own:
                for _ in range(3):
                    with own.lock("locks/nightly", ttl=10) as lock:
                        holders.append(number)
                        if len(holders) > 1:
                            overlaps.append(number)
                        assert own.get_value(lock.key) is not None
                        time.sleep(0.01)
                        holders.remove(number)
        except BaseException as exc:
            errors.append(exc)

    run_threads(worker, 3)
    assert not errors
    assert not overlaps
    with sync.connect(server.endpoints) as check:
        assert check.get("locks/nightly/", prefix=True).count == 0


def test_try_lock_election_mirror_namespace(client: sync.Client) -> None:
    with client.try_lock("locks/try") as held:
        assert held is not None
        assert client.try_lock("locks/try").acquire() is None
    again = client.try_lock("locks/try").acquire()
    assert again is not None
    assert again.release() is True

    election = client.election("elections/e")
    with election.campaign("me") as leader_key:
        leader = election.leader()
        assert leader is not None
        assert leader.value == b"me"
        assert leader_key.key == leader.key
    with client.mirror("mirrored/") as mirror:
        revision = client.put("mirrored/x", "1").header.revision
        assert mirror.wait_for(revision) >= revision
        assert mirror.get("mirrored/x").value == b"1"  # type: ignore[union-attr]
        assert [key for key, _ in mirror.items()] == [b"mirrored/x"]
    view = client.namespace("tenant/")
    view.put("k", "v")
    assert client.get_value("tenant/k") == b"v"
    assert view.get_value("k") == b"v"
    assert client.maintenance.status().version
    assert client.cluster.members()


def test_txn(client: sync.Client) -> None:
    client.put("txn/balance", "10")
    response = client.txn(
        [etcd.Compare.value("txn/balance") == b"10"],
        [etcd.Op.put("txn/balance", "5"), etcd.Op.get("txn/balance")],
        [etcd.Op.get("txn/balance")],
    )
    assert response.succeeded
    assert client.get_value("txn/balance") == b"5"


def test_32_threads_share_one_client(client: sync.Client) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(32)

    def work(number: int) -> None:
        try:
            barrier.wait(SCRIPT_TIMEOUT)
            for i in range(10):
                client.put(f"threads/{number}/{i}", str(i))
                assert client.get_value(f"threads/{number}/{i}") == str(i).encode()
        except BaseException as exc:
            errors.append(exc)

    run_threads(work, 32)
    assert not errors
    assert client.get("threads/", prefix=True, count_only=True).count == 320


def test_closed_client_raises(server: EtcdServer) -> None:
    client = sync.connect(server.endpoints)
    client.close()
    client.close()  # again: nothing
    with pytest.raises(sync.ClientClosedError):
        client.get("k")


def test_connect_failure_is_the_trio_clients() -> None:
    # Connecting is lazy, as the trio client's: the first call says it, within the bound.
    client = sync.connect("127.0.0.1:1", connect_timeout=0.5)
    try:
        with pytest.raises(etcd.ConnectionFailedError):
            client.get("k", timeout=1)
    finally:
        client.close()


def test_ctrl_c_cancels_a_blocked_call(server: EtcdServer, client: sync.Client) -> None:
    with client.lock("locks/ctrl-c", ttl=10):
        child = start_script(
            """
            import sys
            from puregrpc_etcd import sync
            with sync.connect(sys.argv[1]) as client:
                print("ready", flush=True)
                try:
                    with client.lock("locks/ctrl-c", ttl=10):
                        print("acquired?!", flush=True)
                except KeyboardInterrupt:
                    # The waiter's key and lease are gone; the connection still works.
                    waiting = client.get("locks/ctrl-c/", prefix=True).count
                    print("interrupted", waiting, flush=True)
            """,
            server.endpoints[0],
        )
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        time.sleep(0.5)  # let it block on the lock (an earlier signal would be caught too)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=SCRIPT_TIMEOUT)
    assert child.returncode == 0, err
    assert out == "interrupted 1\n"  # only our own key: the child's waiter was removed


def test_a_lock_taken_as_ctrl_c_comes_is_released(server: EtcdServer) -> None:
    """Ctrl-C while ``acquire_lock`` waits, handled (slowly) once the trio side has taken the
    lock: the lock nobody can release any more is released (it stayed taken)."""
    child = start_script(
        """
        import signal, sys, threading, time
        from puregrpc_etcd import sync
        NAME = "locks/ctrl-c-taken"
        with sync.connect(sys.argv[1]) as client, sync.connect(sys.argv[1]) as other:
            held = other.lock(NAME)
            held.__enter__()

            def slow_interrupt(signum, frame):
                held.__exit__(None, None, None)  # the other holder leaves: ours is taken...
                time.sleep(0.5)
                raise KeyboardInterrupt  # ... and only then does Ctrl-C come through

            signal.signal(signal.SIGINT, slow_interrupt)
            main = threading.main_thread().ident
            with client.lease(30) as lease:
                threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGINT)).start()
                try:
                    client.acquire_lock(NAME, lease)
                    print("not interrupted", flush=True)
                except KeyboardInterrupt:
                    print(client.get(NAME + "/", prefix=True).count, flush=True)
        """,
        server.endpoints[0],
    )
    out, err = child.communicate(timeout=SCRIPT_TIMEOUT)
    assert child.returncode == 0, err
    assert out == "0\n"


def test_fork_child_gets_a_typed_error_and_can_connect(server: EtcdServer) -> None:
    child = start_script(
        """
        import os, sys
        from puregrpc_etcd import sync
        client = sync.connect(sys.argv[1])
        client.put("fork/k", "parent")
        pid = os.fork()
        if pid == 0:
            try:
                client.get("fork/k")
            except sync.ForkedError:
                with sync.connect(sys.argv[1]) as fresh:
                    fresh.put("fork/k", "child")
                os._exit(0)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), client.get_value("fork/k").decode())
        client.close()
        """,
        server.endpoints[0],
    )
    out, err = child.communicate(timeout=SCRIPT_TIMEOUT)
    assert child.returncode == 0, err
    assert out == "0 child\n"


def test_fork_child_leaves_blocks_entered_before_the_fork(server: EtcdServer) -> None:
    """In the child, leaving a block of the parent's client (and closing that client) returns
    at once: there is no loop thread to wait for there. The parent's lock is untouched."""
    child = start_script(
        """
        import os, signal, sys, warnings
        from puregrpc_etcd import sync
        warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
        client = sync.connect(sys.argv[1])
        with client.lock("fork/lock") as lock:
            pid = os.fork()
            if pid == 0:
                signal.alarm(20)  # a hang ends the child (exit code -14) rather than the test
            else:
                _, status = os.waitpid(pid, 0)
                print(os.waitstatus_to_exitcode(status), lock.lost.is_set(), flush=True)
        if pid == 0:
            client.close()
            os._exit(0)
        print(client.get("fork/lock", prefix=True).count, flush=True)
        client.close()
        """,
        server.endpoints[0],
    )
    out, err = child.communicate(timeout=SCRIPT_TIMEOUT)
    assert child.returncode == 0, err
    assert out == "0 False\n0\n"  # the child left at once; the parent released its lock


def test_exit_with_an_open_client(server: EtcdServer) -> None:
    child = start_script(
        """
        import sys, threading
        from puregrpc_etcd import sync
        client = sync.connect(sys.argv[1])
        lease = client.lease(30).__enter__()
        client.put("exit/registered", "x", lease=lease.id)
        watching = threading.Thread(target=lambda: list(client.watch("exit/none")), daemon=True)
        watching.start()
        print("leaving", flush=True)
        """,
        server.endpoints[0],
    )
    out, err = child.communicate(timeout=SCRIPT_TIMEOUT)
    assert child.returncode == 0
    assert out == "leaving\n"
    assert err == ""
    with sync.connect(server.endpoints) as check:
        # Closing at exit revoked the lease, so its key is gone at once.
        assert check.get_value("exit/registered") is None


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_threads_that_called_hold_no_socket_each(client: sync.Client) -> None:
    """A thread waits on a socket pair lent for the wait: 64 threads that each made a call hold
    no sockets of their own, alive (a thread pool) or ended (PyPy closed a thread's own pair only
    when the collector ran: a thread per job ran out of file descriptors)."""
    client.get("k")
    before = open_fds()
    turn = threading.Lock()
    release = threading.Event()

    def call(number: int) -> None:
        with turn:  # one call at a time: one pair serves them all
            client.put(f"pool/{number}", "v")
        release.wait(SCRIPT_TIMEOUT)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for _ in range(int(SCRIPT_TIMEOUT / 0.01)):
        if client.get("pool/", prefix=True, count_only=True).count == 64:
            break
        time.sleep(0.01)
    alive = open_fds() - before
    release.set()
    for thread in threads:
        thread.join(SCRIPT_TIMEOUT)
    for number in range(64):  # ended threads, one after the other (no collection forced)
        thread = threading.Thread(target=client.get, args=(f"pool/{number}",))
        thread.start()
        thread.join(SCRIPT_TIMEOUT)
    ended = open_fds() - before
    assert max(alive, ended) < 8, (alive, ended)


def test_closing_ends_the_thread(server: EtcdServer) -> None:
    before = set(threading.enumerate())
    for _ in range(10):
        with sync.connect(server.endpoints) as client:
            client.get("k")
        # Not only told to end: ended (a thread-leak check right after close sees nothing).
        assert set(threading.enumerate()) <= before


def test_an_observer_outlives_a_loop_left_with_break(client: sync.Client) -> None:
    """As on trio and asyncio: leaving ``for`` over an observer kept in ``with`` does not end
    it (it ended, and the next loop over it stopped at once, without the new leader)."""
    election = client.election("elections/loops")
    with election.campaign("v1"), election.observe() as leaders:
        for leader in leaders:
            assert leader.value == b"v1"
            break
        election.proclaim("v2")
        for leader in leaders:
            assert leader.value == b"v2"
            break
        else:
            raise AssertionError("the observer ended with the first loop")


def test_an_observer_left_with_break_ends(client: sync.Client) -> None:
    """A bare ``for`` over ``observe()`` left with ``break`` drops the trio observer, whose
    finaliser ends it (as a bare ``async for`` on trio)."""
    election = client.election("elections/bare")
    with election.campaign("v1"):
        observer = election.observe()
        trio_observer = weakref.ref(observer._target)
        for leader in observer:
            assert leader.value == b"v1"
            break
        del observer
        for _ in range(int(SCRIPT_TIMEOUT / 0.02)):
            gc.collect()  # PyPy drops it when collected, CPython at once
            if trio_observer() is None:
                break
            time.sleep(0.02)
        assert trio_observer() is None


def test_closing_an_observer_of_a_closed_client_does_nothing(server: EtcdServer) -> None:
    """As on trio: ``close()`` (and leaving ``with``) ends an observer, and there is nothing
    to end once its client is closed (it raised ClientClosedError)."""
    client = sync.connect(server.endpoints)
    observer = client.election("elections/closed").observe()
    client.close()
    observer.close()
    with observer:
        pass
