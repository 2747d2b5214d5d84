"""Watch against a real etcd: event types and options, filters, history replay, compaction,
progress, one shared stream for many watchers, backpressure (overflow errors and pauses),
cancellation, the callback form."""

from __future__ import annotations

import itertools
import socket
import urllib.request

import pytest
import trio
import trio.lowlevel

import puregrpc_etcd as etcd
from puregrpc_etcd.errors import CompactedError, DeadlineExceededError
from puregrpc_etcd.testing import EtcdServer
from puregrpc_etcd.watch import Event, Watcher

_prefixes = itertools.count()


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test of the module writes to."""
    return f"/watch-test/{next(_prefixes)}/"


async def take(
    watcher: Watcher, count: int, seconds: float = 10.0, events: list[Event] | None = None
) -> list[Event]:
    """The next ``count`` events (collected into ``events`` when given, even on errors)."""
    events = [] if events is None else events
    with trio.fail_after(seconds):
        async for event in watcher:
            events.append(event)
            if len(events) == count:
                break
    return events


def server_watchers(server: EtcdServer) -> int:
    """The number of watchers the server holds, from its metrics."""
    with urllib.request.urlopen(f"{server.client_url}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("etcd_debugging_mvcc_watcher_total "):
                return int(float(line.split()[1]))
    raise AssertionError("etcd_debugging_mvcc_watcher_total is not in the metrics")


async def wait_server_watchers(server: EtcdServer, expected: int) -> None:
    with trio.fail_after(10):
        for _ in range(500):
            if await trio.to_thread.run_sync(server_watchers, server) == expected:
                return
            await trio.sleep(0.02)
    raise AssertionError(f"the server never held {expected} watchers")


async def test_put_modify_delete_events(client: etcd.Client, prefix: str) -> None:
    key = prefix + "k"
    async with client.watch(key) as watcher:
        created = await client.put(key, "v1")
        modified = await client.put(key, b"v2")
        deleted = await client.delete(key)
        first, second, third = await take(watcher, 3)
    assert (first.type, first.kv.key, first.kv.value) == ("put", key.encode(), b"v1")
    assert first.is_create
    assert not first.is_modify
    assert first.kv.mod_revision == created.header.revision
    assert first.kv.create_revision == created.header.revision
    assert first.prev_kv is None
    assert (second.type, second.kv.value, second.kv.version) == ("put", b"v2", 2)
    assert second.is_modify
    assert not second.is_create
    assert (third.type, third.kv.key) == ("delete", key.encode())
    assert third.is_delete
    assert third.kv.mod_revision == deleted.header.revision
    assert second.kv.mod_revision == modified.header.revision
    assert watcher.revision == deleted.header.revision
    assert "put" in repr(first)


async def test_single_key_prefix_range_and_from_key(client: etcd.Client, prefix: str) -> None:
    single_ = client.watch(prefix + "b")
    by_prefix_ = client.watch(prefix + "b", prefix=True)
    by_range_ = client.watch(prefix + "b", range_end=prefix + "d")
    from_key_ = client.watch(prefix + "c", from_key=True)
    async with (
        single_ as single,
        by_prefix_ as by_prefix,
        by_range_ as by_range,
        from_key_ as tail,
    ):
        for name in ("a", "b", "ba", "c", "d"):
            await client.put(prefix + name, name)
        await client.put(prefix + "zz", "end")  # > every other key: ends from_key's list

        def keys(events: list[Event]) -> list[str]:
            return [e.kv.key.decode()[len(prefix) :] for e in events]

        assert keys(await take(single, 1)) == ["b"]
        assert keys(await take(by_prefix, 2)) == ["b", "ba"]
        assert keys(await take(by_range, 3)) == ["b", "ba", "c"]
        assert keys(await take(tail, 3)) == ["c", "d", "zz"]
        # Nothing more is queued for the narrow watchers.
        assert single.pending == 0
        assert by_prefix.pending == 0


async def test_filters_and_prev_kv(client: etcd.Client, prefix: str) -> None:
    key = prefix + "k"
    deletes_, puts_ = client.watch(key, no_put=True), client.watch(key, no_delete=True)
    async with deletes_ as deletes, puts_ as puts, client.watch(key, prev_kv=True) as with_prev:
        await client.put(key, "one")
        await client.put(key, "two")
        await client.delete(key)
        assert [e.type for e in await take(deletes, 1)] == ["delete"]
        assert [e.kv.value for e in await take(puts, 2)] == [b"one", b"two"]
        first, second, third = await take(with_prev, 3)
        await client.put(key, "three")
        assert [e.kv.value for e in await take(puts, 1)] == [b"three"]
        assert deletes.pending == 0
    assert first.prev_kv is None
    assert second.prev_kv is not None
    assert second.prev_kv.value == b"one"
    assert third.prev_kv is not None
    assert (third.prev_kv.key, third.prev_kv.value) == (key.encode(), b"two")


async def test_start_revision_replays_history(client: etcd.Client, prefix: str) -> None:
    first = await client.put(prefix + "a", "1")
    await client.put(prefix + "b", "2")
    await client.delete(prefix + "a")
    start = first.header.revision
    async with client.watch(prefix, prefix=True, start_revision=start) as watcher:
        assert watcher.revision == start - 1
        events = await take(watcher, 3)
        await client.put(prefix + "c", "3")
        [live] = await take(watcher, 1)
    assert [(e.type, e.kv.key[-1:]) for e in events] == [
        ("put", b"a"),
        ("put", b"b"),
        ("delete", b"a"),
    ]
    assert [e.kv.mod_revision for e in events] == [start, start + 1, start + 2]
    assert live.kv.key == (prefix + "c").encode()


async def test_one_revision_with_several_events(client: etcd.Client, prefix: str) -> None:
    async with client.watch(prefix, prefix=True) as watcher:
        reply = await client.txn(
            success=[etcd.Op.put(prefix + name, name) for name in ("a", "b", "c")]
        )
        first = await take(watcher, 1)
        # Part of a revision has been handed out: the revision is not complete yet.
        assert watcher.revision == reply.header.revision - 1
        rest = await take(watcher, 2)
        assert watcher.revision == reply.header.revision
    assert {e.kv.mod_revision for e in first + rest} == {reply.header.revision}


async def test_concurrent_writer_10000_events_in_order(client: etcd.Client, prefix: str) -> None:
    writers, per_writer = 10, 1000
    async with client.watch(prefix, prefix=True) as watcher:

        async def write(writer: int) -> None:
            for index in range(per_writer):
                await client.put(f"{prefix}{writer}", str(index))

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for writer in range(writers):
                    nursery.start_soon(write, writer)
                events = await take(watcher, writers * per_writer, seconds=120)
    revisions = [e.kv.mod_revision for e in events]
    assert revisions == sorted(set(revisions))
    assert revisions == list(range(revisions[0], revisions[0] + writers * per_writer))
    for writer in range(writers):
        values = [e.kv.value for e in events if e.kv.key == f"{prefix}{writer}".encode()]
        assert values == [str(index).encode() for index in range(per_writer)]


async def test_hundred_watchers_share_one_stream(client: etcd.Client, prefix: str) -> None:
    async with trio.open_nursery() as nursery:
        received: dict[int, list[bytes]] = {}

        async def watch_one(index: int, task_status: trio.TaskStatus[None]) -> None:
            async with client.watch(f"{prefix}{index}") as watcher:
                task_status.started()
                received[index] = [e.kv.value for e in await take(watcher, 2, 30)]

        for index in range(100):
            await nursery.start(watch_one, index)
        hub = client._caller.watch_hub
        assert hub is not None
        assert hub.streams_opened == 1
        assert hub.attached == 100
        # On the wire too: the connection carries one HTTP/2 stream (no other call is running).
        connection = client._caller.channel._connector.connection
        assert connection is not None
        assert connection.protocol.open_streams == 1
        for round_ in ("x", "y"):
            for index in range(100):
                await client.put(f"{prefix}{index}", round_)
    assert received == {index: [b"x", b"y"] for index in range(100)}
    assert hub.streams_opened == 1


async def test_leaving_the_block_cancels_on_the_server(
    server: EtcdServer, client: etcd.Client, prefix: str
) -> None:
    before = await trio.to_thread.run_sync(server_watchers, server)
    async with client.watch(prefix + "stays") as stays:
        async with client.watch(prefix + "goes"):
            await wait_server_watchers(server, before + 2)
        # The stream is still open for the other watcher: only a cancel request explains it.
        await wait_server_watchers(server, before + 1)
        await client.put(prefix + "stays", "v")
        assert [e.kv.value for e in await take(stays, 1)] == [b"v"]
    async for _ in stays:  # a left watcher's iterator ends
        raise AssertionError("no events after the block")
    await wait_server_watchers(server, before)


async def test_a_watch_context_is_entered_once(client: etcd.Client, prefix: str) -> None:
    context = client.watch(prefix)
    async with context:
        with pytest.raises(RuntimeError, match="once"):
            async with context:
                raise AssertionError("entered twice")


async def test_slow_watcher_overflows_alone(
    server: EtcdServer, client: etcd.Client, prefix: str
) -> None:
    count = 60
    before = await trio.to_thread.run_sync(server_watchers, server)
    idle_ = client.watch(prefix, prefix=True, max_backlog=8)
    async with idle_ as idle, client.watch(prefix, prefix=True) as busy:
        for index in range(count):
            await client.put(f"{prefix}{index:03}", str(index))
        events = await take(busy, count)
        assert [e.kv.value for e in events] == [str(i).encode() for i in range(count)]
        # The idle watcher was cancelled on the server; its buffer stopped growing.
        await wait_server_watchers(server, before + 1)
        assert 8 < idle.pending < count
        buffered: list[Event] = []
        with pytest.raises(etcd.WatchOverflowError) as caught:
            await take(idle, count, events=buffered)
    error = caught.value
    assert (error.key, error.bound, error.limit) == (prefix.encode(), "max_backlog", 8)
    assert buffered == events[: len(buffered)]
    assert error.revision == buffered[-1].kv.mod_revision
    # Watching again from the revision after it misses nothing.
    async with client.watch(prefix, prefix=True, start_revision=error.revision + 1) as again:
        rest = await take(again, count - len(buffered))
    assert buffered + rest == events


async def test_byte_bound_overflows_with_large_values(client: etcd.Client, prefix: str) -> None:
    value = "x" * 16384
    async with client.watch(prefix, prefix=True, max_backlog_bytes=65536) as idle:
        written = []
        for index in range(20):
            written.append((await client.put(f"{prefix}{index:02}", value)).header.revision)
        buffered: list[Event] = []
        with pytest.raises(etcd.WatchOverflowError) as caught:
            await take(idle, 20, events=buffered)
    error = caught.value
    assert (error.bound, error.limit) == ("max_backlog_bytes", 65536)
    assert 4 <= len(buffered) < 20  # about 64 KiB of keys and values, then it stopped
    assert [e.kv.mod_revision for e in buffered] == written[: len(buffered)]
    assert error.revision == buffered[-1].kv.mod_revision
    assert "max_backlog_bytes=65536" in str(error)


async def test_one_revision_larger_than_the_bound_reaches_a_prompt_consumer(
    client: etcd.Client, prefix: str
) -> None:
    for index in range(20):
        await client.put(f"{prefix}{index:02}", "v")
    async with client.watch(prefix, prefix=True, max_backlog=5) as watcher:
        deleted = await client.delete(prefix, prefix=True)
        events = await take(watcher, 20)
        assert {e.kv.mod_revision for e in events} == {deleted.header.revision}
        # Still watching: being caught up, it was not behind.
        await client.put(prefix + "after", "v")
        assert [e.kv.key for e in await take(watcher, 1)] == [(prefix + "after").encode()]


async def test_pause_mode_delivers_every_event_in_order(client: etcd.Client, prefix: str) -> None:
    count = 60
    idle_ = client.watch(prefix, prefix=True, max_backlog=8, on_overflow="pause")
    async with idle_ as idle, client.watch(prefix, prefix=True) as busy:
        for index in range(count):
            await client.put(f"{prefix}{index:03}", str(index))
        events = await take(busy, count)
        assert [e.kv.value for e in events] == [str(i).encode() for i in range(count)]
        # The idle watcher was paused on the server rather than buffering everything.
        assert idle._subscription.pauses >= 1
        assert idle.pending < count
        replayed = await take(idle, count)
    assert [(e.kv.key, e.kv.mod_revision) for e in replayed] == [
        (e.kv.key, e.kv.mod_revision) for e in events
    ]


async def test_compacted_start_revision_raises(client: etcd.Client, prefix: str) -> None:
    first = await client.put(prefix + "k", "1")
    last = await client.put(prefix + "k", "2")
    await client.compact(last.header.revision)
    with pytest.raises(CompactedError) as caught:
        async with client.watch(prefix + "k", start_revision=first.header.revision) as w:
            await take(w, 1)
    assert caught.value.compact_revision == last.header.revision


async def test_a_watch_the_server_cancelled_is_cancelled_on_the_stream_too(
    server: EtcdServer, client: etcd.Client, prefix: str
) -> None:
    # etcd keeps a compacted watcher on its stream until the client cancels it: it held server
    # memory for the stream's life, and etcd >= 3.5.8 then never answered a progress request.
    last = await client.put(prefix + "k", "1")
    await client.compact(last.header.revision)
    before = await trio.to_thread.run_sync(server_watchers, server)
    async with client.watch(prefix + "live") as live:
        await wait_server_watchers(server, before + 1)
        with pytest.raises(CompactedError):
            async with client.watch(prefix + "k", start_revision=1) as compacted:
                await take(compacted, 1)
        await wait_server_watchers(server, before + 1)
        assert await live.request_progress(timeout=10) >= last.header.revision


async def test_compaction_while_paused_raises_after_buffered_events(
    client: etcd.Client, prefix: str
) -> None:
    paused = client.watch(prefix, prefix=True, max_backlog=4, on_overflow="pause")
    async with paused as watcher:
        for index in range(12):
            await client.put(f"{prefix}{index:02}", "v")
        for _ in range(1000):
            if watcher._subscription.paused:
                break
            await trio.sleep(0.01)
        assert watcher._subscription.paused
        buffered = watcher.pending
        latest = await client.put(prefix + "last", "v")
        await client.compact(latest.header.revision)
        events: list[Event] = []
        with pytest.raises(CompactedError) as caught:
            await take(watcher, 1000, events=events)
    assert len(events) >= buffered
    assert caught.value.compact_revision == latest.header.revision
    revisions = [e.kv.mod_revision for e in events]
    assert revisions == sorted(set(revisions))


async def test_request_progress_advances_revision(client: etcd.Client, prefix: str) -> None:
    async with client.watch(prefix + "quiet") as watcher:
        start = watcher.revision
        elsewhere = await client.put(prefix + "elsewhere", "v")
        assert watcher.revision == start
        with trio.fail_after(10):
            revision = await watcher.request_progress()
        assert revision >= elsewhere.header.revision
        assert watcher.revision == revision


async def test_callback_form(client: etcd.Client, prefix: str) -> None:
    seen: list[bytes] = []
    sync_seen: list[bytes] = []
    both_done = trio.Semaphore(0)

    async def handler(event: Event) -> None:
        await trio.lowlevel.checkpoint()  # awaited before the next event is handled
        seen.append(event.kv.value)
        if len(seen) == 3:
            both_done.release()

    def sync_handler(event: Event) -> None:
        sync_seen.append(event.kv.value)
        if len(sync_seen) == 3:
            both_done.release()

    async with trio.open_nursery() as nursery:
        scope = await client.watch_callback(nursery, prefix, handler, prefix=True)
        sync_scope = await client.watch_callback(nursery, prefix, sync_handler, prefix=True)
        for value in ("1", "2", "3"):
            await client.put(prefix + "k", value)
        with trio.fail_after(10):
            await both_done.acquire()
            await both_done.acquire()
        scope.cancel()
        sync_scope.cancel()
    assert seen == [b"1", b"2", b"3"]
    assert sync_seen == seen


async def test_callback_errors_reach_the_callers_nursery(client: etcd.Client, prefix: str) -> None:
    def broken(event: Event) -> None:
        raise LookupError(event.kv.value)

    async def run_until_it_fails() -> None:
        async with trio.open_nursery() as nursery:
            await client.watch_callback(nursery, prefix, broken, prefix=True)
            await client.put(prefix + "k", "v")

    with trio.fail_after(10), pytest.raises(Exception) as caught:
        await run_until_it_fails()
    # The nursery's exception group holds the handler's own error.
    assert [type(error) for error in caught.value.exceptions] == [LookupError]


async def test_progress_request_is_answered_once_the_server_can(
    client: etcd.Client, prefix: str
) -> None:
    # etcd >= 3.5.8 drops a progress request, unanswered, while a watcher of the stream starts
    # at a revision the store has not reached: the client asks again until it is answered.
    revision = (await client.put(prefix + "before", "1")).header.revision

    async def write_elsewhere_soon() -> None:
        await trio.sleep(0.3)
        await client.put(prefix + "elsewhere", "2")

    async with (
        client.watch(prefix + "quiet", start_revision=revision + 1) as watcher,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(write_elsewhere_soon)
        assert await watcher.request_progress(timeout=10) >= revision


async def test_errors_before_io(client: etcd.Client) -> None:
    with pytest.raises(TypeError):
        client.watch(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        client.watch("")
    with pytest.raises(ValueError, match="start_revision"):
        client.watch("k", start_revision=-1)
    with pytest.raises(ValueError, match="max_backlog"):
        client.watch("k", max_backlog=0)
    with pytest.raises(ValueError, match="max_backlog_bytes"):
        client.watch("k", max_backlog_bytes=0)
    with pytest.raises(ValueError, match="on_overflow"):
        client.watch("k", on_overflow="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most one"):
        client.watch("k", prefix=True, range_end="z")
    # An empty range, which etcd would refuse (it used to leave the watch waiting forever).
    for key, end in (("b", "a"), ("b", "b"), ("b\x00", "b")):
        with pytest.raises(ValueError, match="must sort after the key"):
            client.watch(key, range_end=end)
        with pytest.raises(ValueError, match="must sort after the key"):
            client.namespace("ns/").watch(key, range_end=end)
    assert client._caller.watch_hub is None  # nothing was started


async def test_namespaced_watch_sees_its_keys_without_the_prefix(
    client: etcd.Client, prefix: str
) -> None:
    view = client.namespace(prefix + "ns/")
    async with view.watch("", prefix=True) as everything, view.watch("k") as one:
        await client.put(prefix + "outside", "no")
        await view.put("k", "1")
        await client.put(prefix + "ns/other", "2")
        [first, second] = await take(everything, 2)
        [only] = await take(one, 1)
    assert (first.kv.key, second.kv.key, only.kv.key) == (b"k", b"other", b"k")
    assert client._caller.watch_hub is not None
    assert client._caller.watch_hub.streams_opened == 1  # views share the client's stream


async def test_entry_timeout_when_no_server_answers() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{probe.getsockname()[1]}"
    async with etcd.connect([endpoint], connect_timeout=0.2) as unreachable:
        with trio.fail_after(10), pytest.raises(DeadlineExceededError):
            async with unreachable.watch("k", timeout=0.5):
                raise AssertionError("created without a server")
        hub = unreachable._caller.watch_hub
        assert hub is not None
        assert hub.attached == 0


@pytest.mark.slow
async def test_request_progress_timeout_while_the_server_is_down() -> None:
    with EtcdServer() as own:
        async with (
            etcd.connect(own.endpoints, connect_timeout=0.2) as client,
            client.watch("k") as watcher,
        ):
            await trio.to_thread.run_sync(own.stop)
            with trio.fail_after(10), pytest.raises(DeadlineExceededError):
                await watcher.request_progress(timeout=0.5)


async def test_watch_after_the_client_closed(server: EtcdServer) -> None:
    async with etcd.connect(server.endpoints) as closed:
        outliving = closed.watch("k")
        watcher = await outliving.__aenter__()
    # A watcher still open when its client closes ends with an error, never in silence.
    with trio.fail_after(5), pytest.raises(etcd.EtcdError, match="closed"):
        await watcher.__anext__()
    await outliving.__aexit__(None, None, None)
    with pytest.raises(etcd.EtcdError, match="closed"):
        async with closed.watch("k"):
            raise AssertionError("watched through a closed client")
