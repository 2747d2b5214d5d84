"""Mirrors against a real etcd: the first listing (in pages), a concurrent burst of writes and
deletes ending equal to the server, ``wait_for`` with and without changes under the prefix, the
change iterator (order, previous values, overflow), transactions applied whole, and namespaces."""

from __future__ import annotations

import itertools
import random

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd.errors import DeadlineExceededError
from puregrpc_etcd.mirror import Mirror, MirrorChange, MirrorChanges
from puregrpc_etcd.txn import Op

_prefixes = itertools.count()


@pytest.fixture
def p() -> bytes:
    """A key prefix no other test of the module writes to."""
    return f"mirror-test/{next(_prefixes)}/".encode()


def state(mirror: Mirror) -> dict[bytes, tuple[bytes, int]]:
    return {key: (kv.value, kv.mod_revision) for key, kv in mirror.items()}


async def server_state(client: etcd.Client, prefix: bytes) -> dict[bytes, tuple[bytes, int]]:
    held = await client.get_prefix(prefix)
    return {key: (kv.value, kv.mod_revision) for key, kv in held.items()}


async def take(changes: MirrorChanges, count: int) -> list[MirrorChange]:
    taken: list[MirrorChange] = []
    with trio.fail_after(10):
        async for change in changes:
            taken.append(change)
            if len(taken) == count:
                break
    return taken


async def test_first_listing_in_pages(client: etcd.Client, p: bytes) -> None:
    for index in range(7):
        await client.put(p + b"%d" % index, str(index))
    await client.put(p[:-1] + b"0", "a neighbour outside the prefix")
    last = await client.put(p + b"x", "x")
    async with client.mirror(p, page_size=2) as mirror:
        assert mirror.revision >= last.header.revision
        assert state(mirror) == await server_state(client, p)
        assert len(mirror) == 8
        assert [key for key, _ in mirror.items()] == sorted(await client.get_prefix(p))
        kv = mirror.get(p + b"3")
        assert kv is not None
        assert kv.value == b"3"
        assert mirror.get((p + b"3").decode()) == kv
        assert mirror.get(p + b"missing") is None
        assert p + b"x" in mirror
        assert p[:-1] + b"0" not in mirror
        assert mirror.resyncs == 0
        assert "following" in repr(mirror)
    assert "closed" in repr(mirror)
    await client.delete(p[:-1] + b"0")


async def test_concurrent_burst_ends_equal_to_the_server(client: etcd.Client, p: bytes) -> None:
    for index in range(5):
        await client.put(p + b"seed%d" % index, "seed")
    async with client.mirror(p) as mirror:
        revisions: list[int] = []

        async def writer(seed: int) -> None:
            chooser = random.Random(seed)
            for _ in range(60):
                key = p + b"k%d" % chooser.randrange(12)
                if chooser.random() < 0.3:
                    reply = await client.delete(key)
                    revisions.append(reply.header.revision)
                else:
                    put = await client.put(key, str(chooser.random()))
                    revisions.append(put.header.revision)

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for seed in range(4):
                    nursery.start_soon(writer, seed)
            reached = await mirror.wait_for(max(revisions))
        assert reached >= max(revisions)
        assert state(mirror) == await server_state(client, p)


async def test_wait_for_revisions_outside_the_prefix(client: etcd.Client, p: bytes) -> None:
    await client.put(p + b"a", "1")
    async with client.mirror(p) as mirror:
        before = mirror.revision
        elsewhere = await client.put(b"not-" + p, "x")
        with trio.fail_after(10):
            reached = await mirror.wait_for(elsewhere.header.revision)
        assert reached >= elsewhere.header.revision > before
        assert mirror.revision == reached
        assert state(mirror) == await server_state(client, p)
        # A revision that does not exist yet: the wait is bounded by its timeout.
        with pytest.raises(DeadlineExceededError):
            await mirror.wait_for(reached + 1000, timeout=0.3)
        own = await client.put(p + b"b", "2")
        with trio.fail_after(10):
            await mirror.wait_for(own.header.revision)
        kv = mirror.get(p + b"b")
        assert kv is not None
        assert kv.mod_revision == own.header.revision
        with pytest.raises(TypeError):
            await mirror.wait_for("1")  # type: ignore[arg-type]
    await client.delete(b"not-" + p)


async def test_every_revision_it_claims_is_exact(client: etcd.Client, p: bytes) -> None:
    """While others write inside and outside the prefix, each state the mirror shows equals the
    server's state at the revision the mirror claims for it."""
    async with client.mirror(p) as mirror:
        done = trio.Event()

        async def write_inside() -> None:
            chooser = random.Random(7)
            while not done.is_set():
                key = p + b"%d" % chooser.randrange(5)
                if chooser.random() < 0.3:
                    await client.delete(key)
                else:
                    await client.put(key, str(chooser.random()))

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write_inside)
                for index in range(25):
                    outside = await client.put(b"outside-" + p, str(index))
                    await mirror.wait_for(outside.header.revision)
                    claimed, snapshot = mirror.revision, state(mirror)
                    assert claimed >= outside.header.revision
                    at_claim = await client.get(p, prefix=True, revision=claimed)
                    assert snapshot == {kv.key: (kv.value, kv.mod_revision) for kv in at_claim.kvs}
                done.set()
    await client.delete(b"outside-" + p)


async def test_changes_in_order_with_previous_values(client: etcd.Client, p: bytes) -> None:
    await client.put(p + b"old", "0")
    async with client.mirror(p) as mirror:
        changes = mirror.changes()
        first = await client.put(p + b"a", "1")
        await client.put(p + b"a", "2")
        await client.delete(p + b"old")
        await client.delete(p + b"never-existed")
        await client.put(p + b"b", "3")
        got = await take(changes, 4)
        assert [(c.kind, c.key) for c in got] == [
            ("put", p + b"a"),
            ("put", p + b"a"),
            ("delete", p + b"old"),
            ("put", p + b"b"),
        ]
        assert got[0].prev_kv is None
        assert got[0].kv is not None
        assert got[0].revision == first.header.revision
        assert got[1].prev_kv is not None
        assert got[1].prev_kv.value == b"1"
        assert got[2].kv is None
        assert got[2].prev_kv is not None
        assert got[2].prev_kv.value == b"0"
        assert [c.revision for c in got] == sorted(c.revision for c in got)
        # `async for` on the mirror starts a fresh iterator from now on.
        async with trio.open_nursery() as nursery:
            seen: list[MirrorChange] = []

            async def follow() -> None:
                async for change in mirror:
                    seen.append(change)
                    if change.key == p + b"end":
                        return

            nursery.start_soon(follow)
            await trio.testing.wait_all_tasks_blocked()
            await client.put(p + b"end", "x")
        assert [c.key for c in seen] == [p + b"end"]
    # The iterators end with the mirror.
    rest = [change async for change in changes]
    assert [c.key for c in rest] == [p + b"end"]


async def test_a_transaction_is_applied_whole(client: etcd.Client, p: bytes) -> None:
    async with client.mirror(p) as mirror:
        changes = mirror.changes()
        applied: list[tuple[int, int]] = []

        async def check_each_change() -> None:
            # When this task runs, the mirror holds every key of a txn or none.
            async for change in changes:
                count = sum(1 for key, _ in mirror.items() if key.startswith(p + b"t"))
                applied.append((mirror.revision, count))
                if change.key == p + b"t2":
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(check_each_change)
            await trio.testing.wait_all_tasks_blocked()
            reply = await client.txn(
                [], [Op.put(p + b"t0", "0"), Op.put(p + b"t1", "1"), Op.put(p + b"t2", "2")]
            )
        assert applied
        assert all(entry == (reply.header.revision, 3) for entry in applied)


async def test_a_slow_iterator_gets_a_resync(client: etcd.Client, p: bytes) -> None:
    async with client.mirror(p, max_backlog=3) as mirror:
        changes = mirror.changes()
        last = None
        for index in range(6):
            last = await client.put(p + b"%d" % index, "x")
        assert last is not None
        with trio.fail_after(10):
            await mirror.wait_for(last.header.revision)
        [resync] = await take(changes, 1)
        assert resync.kind == "resync"
        assert resync.revision == mirror.revision
        assert len(mirror) == 6
        assert mirror.resyncs == 0  # the mirror itself skipped nothing
        await client.put(p + b"after", "y")
        [after] = await take(changes, 1)
        assert (after.kind, after.key) == ("put", p + b"after")


async def test_mirror_through_a_namespace(client: etcd.Client, p: bytes) -> None:
    view = client.namespace(p)
    await view.put("cfg/a", "1")
    await client.put(p[:-1] + b"0", "outside")
    async with view.mirror("") as everything, view.mirror("cfg/") as cfg:
        assert [key for key, _ in everything.items()] == [b"cfg/a"]
        changes = cfg.changes()
        await view.put("cfg/b", "2")
        [change] = await take(changes, 1)
        assert change.key == b"cfg/b"
        assert [key for key, _ in cfg.items()] == [b"cfg/a", b"cfg/b"]
        with trio.fail_after(10):
            await everything.wait_for(change.revision)
        assert [key for key, _ in everything.items()] == [b"cfg/a", b"cfg/b"]
    await client.delete(p[:-1] + b"0")


async def test_bad_arguments_fail_before_any_io(client: etcd.Client) -> None:
    with pytest.raises(TypeError):
        async with client.mirror(3):
            pass
    with pytest.raises(ValueError):
        async with client.mirror("x", page_size=0):
            pass
    with pytest.raises(ValueError, match="timeout"):
        async with client.mirror("x", timeout=0):
            pass


async def test_a_mirror_not_in_place_within_its_timeout(client: etcd.Client, p: bytes) -> None:
    with pytest.raises(DeadlineExceededError):
        async with client.mirror(p, timeout=1e-9):
            pass
    async with client.mirror(p, timeout=30) as mirror:
        assert len(mirror) == 0
