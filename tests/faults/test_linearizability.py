"""Linearizability under faults: concurrent gets, puts, compare-and-sets and deletes on a few keys
of a 3-member cluster while members are killed, stopped, black-holed and reset; the recorded
history must be linearizable, every reply must agree with etcd's own history, and a watcher
must see that history exactly: every revision once, in order.

The run is random; its seed is printed (set ``LIN_SEED`` to repeat the same fault sequence and
workload choices; timing still differs from run to run).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import pytest
import trio
from linearizability import Operation, check
from linearizability_support import FAULTS, FaultProxy, Record, Workload, nemesis, run_client

import puregrpc_etcd as etcd
from puregrpc_etcd.testing import EtcdCluster, etcd_version, find_etcd
from puregrpc_etcd.txn import Compare, Op
from puregrpc_etcd.watch import Event, Watcher

PREFIX = "lin/"
KEYS = [f"{PREFIX}k{i}" for i in range(3)]
END = PREFIX + "end"
CLIENTS = 4
FAULT_SECONDS = float(os.environ.get("LIN_FAULT_SECONDS", "75"))
MAX_OPS_PER_CLIENT = 20_000
MIN_OK_OPS = 500
MAX_CHECK_STEPS = 50_000_000

# Short bounds so that a call ends within seconds whatever the fault, and a silent connection
# is given up within about 3 s (keepalive pings while calls wait).
CLIENT_OPTIONS = {
    "connect_timeout": 1.0,
    "timeout": 3.0,
    "retry_backoff": (0.05, 0.5),
    "keepalive_interval": 2.0,
    "keepalive_timeout": 1.0,
}


def summary(events: list[Event]) -> list[tuple[int, str, bytes, bytes]]:
    return [(e.kv.mod_revision, e.type, e.kv.key, e.kv.value) for e in events]


async def watch_until_end(
    watcher: Watcher, events: list[Event], reached: trio.Event | None = None
) -> None:
    async for event in watcher:
        events.append(event)
        if event.kv.key == END.encode():
            if reached is not None:
                reached.set()
            return


def check_replies(
    records: list[Record], truth: dict[int, tuple[str, bytes, bytes]]
) -> Counter[str]:
    """Each reply against etcd's history; returns how many unknown writes were applied."""
    put_values = Counter(value for kind, _, value in truth.values() if kind == "put")
    duplicated = [value for value, count in put_values.items() if count > 1]
    assert not duplicated, f"values written more than once (a write applied twice): {duplicated}"
    written = {value: revision for revision, (kind, _, value) in truth.items() if kind == "put"}
    unknown: Counter[str] = Counter()
    for record in records:
        op = record.op
        wrote = op.kind == "put" or (op.kind == "cas" and op.succeeded)
        if op.outcome == "ok" and wrote:
            assert truth.get(record.revision) == ("put", op.key.encode(), op.value), op.describe()
        elif op.outcome == "ok" and op.kind == "delete" and op.observed is not None:
            assert truth.get(record.revision) == ("delete", op.key.encode(), b""), op.describe()
        elif op.outcome == "ok" and op.kind == "get" and record.mod_revision:
            assert truth.get(record.mod_revision) == ("put", op.key.encode(), op.observed), (
                op.describe()
            )
        elif op.outcome == "failed" and op.kind in ("put", "cas"):
            assert op.value not in written, f"a failed write was applied: {op.describe()}"
        elif op.outcome == "unknown" and op.kind in ("put", "cas"):
            unknown["applied" if op.value in written else "not applied"] += 1
    return unknown


def check_real_time_revisions(records: list[Record]) -> None:
    """A reply's revision is never older than that of a reply received before the call began
    (on any key: etcd's revisions are one clock for the whole store)."""
    ok = [r for r in records if r.op.outcome == "ok"]
    done = sorted(ok, key=lambda r: r.op.complete)
    newest = 0
    newest_op: Operation | None = None
    position = 0
    for record in sorted(ok, key=lambda r: r.op.invoke):
        op, revision = record.op, record.revision
        while position < len(done) and done[position].op.complete < op.invoke:
            if done[position].revision > newest:
                newest, newest_op = done[position].revision, done[position].op
            position += 1
        assert revision >= newest, (
            f"{op.describe()} answered at revision {revision}, older than revision {newest} of "
            f"{newest_op.describe() if newest_op else ''}, which completed before it began"
        )


@pytest.mark.slow
async def test_history_is_linearizable_under_faults() -> None:
    seed = int(os.environ.get("LIN_SEED", str(random.randrange(2**32))))
    binary = find_etcd()
    version = ".".join(map(str, etcd_version(binary)))
    print(f"\nlinearizability run: etcd {version} ({binary}), LIN_SEED={seed}")
    rng = random.Random(seed)
    workload = Workload(KEYS)
    faults: Counter[str] = Counter()
    fault_log: list[str] = []
    watched: list[Event] = []
    reached = trio.Event()
    with EtcdCluster(size=3) as cluster:
        proxies = [FaultProxy(member.client_port) for member in cluster]
        async with trio.open_nursery() as proxy_nursery:
            for proxy in proxies:
                await proxy_nursery.start(proxy.serve)
            addresses = [proxy.address for proxy in proxies]
            async with etcd.connect(cluster.endpoints) as direct:
                start = (await direct.put(PREFIX + "start", "s")).header.revision + 1
                async with etcd.connect(addresses[::-1], **CLIENT_OPTIONS) as watching:
                    watch = watching.watch(PREFIX, prefix=True, start_revision=start)
                    async with watch as watcher, trio.open_nursery() as nursery:
                        nursery.start_soon(watch_until_end, watcher, watched, reached)
                        stop_at = trio.current_time() + FAULT_SECONDS
                        async with trio.open_nursery() as workers:
                            workers.start_soon(
                                nemesis, cluster, proxies, random.Random(rng.random()),
                                stop_at, faults, fault_log,
                            )  # fmt: skip
                            for number in range(CLIENTS):
                                workers.start_soon(
                                    one_client, addresses, number, workload,
                                    random.Random(rng.random()), stop_at,
                                )  # fmt: skip
                        # Faults over and healed: the end marker, then the watcher must reach it.
                        end_revision = await put_end_marker(direct)
                        with trio.fail_after(60):
                            await reached.wait()
                # etcd's own history, read back on the healthy cluster through a fresh watch.
                with trio.fail_after(60):
                    truth: list[Event] = []
                    async with direct.watch(PREFIX, prefix=True, start_revision=start) as fresh:
                        await watch_until_end(fresh, truth)
            proxy_nursery.cancel_scope.cancel()

    records = workload.records
    outcomes = Counter(r.op.outcome for r in records)
    kinds = Counter((r.op.kind, r.op.outcome) for r in records)
    print(f"faults: {dict(faults)} ({sum(faults.values())} in {FAULT_SECONDS:g} s)")
    for line in fault_log:
        print(f"  {line}")
    print(f"operations: {len(records)}, {dict(outcomes)}; by kind {dict(sorted(kinds.items()))}")
    reproduce = f"reproduce with LIN_SEED={seed} ETCD_BIN={binary}"

    # The watcher saw etcd's history exactly: every revision from start to end once, in order.
    assert summary(watched) == summary(truth), reproduce
    revisions = [e.kv.mod_revision for e in truth]
    assert revisions == list(range(start, end_revision + 1)), reproduce
    history = {e.kv.mod_revision: (e.type, e.kv.key, e.kv.value) for e in truth}

    applied = check_replies(records, history)
    print(f"unknown writes found in etcd's history: {dict(applied)}")
    check_real_time_revisions(records)

    began = time.perf_counter()
    result = check([r.op for r in records], max_steps=MAX_CHECK_STEPS)
    took = time.perf_counter() - began
    searched = {key: (k.operations, k.pruned, k.steps) for key, k in result.keys.items()}
    print(f"checker: {took:.2f} s, {result.steps} steps; per key (ops, pruned, steps) {searched}")
    assert result.linearizable, f"{reproduce}\n" + result.explain([r.op for r in records])

    # Not vacuous: enough calls succeeded, and every kind of fault happened.
    assert outcomes["ok"] >= MIN_OK_OPS, reproduce
    assert all(kind in kinds for kind in [("get", "ok"), ("put", "ok"), ("cas", "ok")])
    assert any(r.op.kind == "cas" and r.op.succeeded for r in records)
    assert any(r.op.kind == "delete" and r.op.observed is not None for r in records)
    assert set(faults) == set(FAULTS), f"some faults never ran: {dict(faults)}; {reproduce}"


async def put_end_marker(client: etcd.Client) -> int:
    """Create the end marker once (a retried plain put could write it twice); its revision."""
    with trio.fail_after(60):
        for _ in range(100):
            try:
                reply = await client.txn(
                    [Compare.create_revision(END) == 0], [Op.put(END, "end")], [Op.get(END)],
                    timeout=5,
                )  # fmt: skip
            except etcd.EtcdError:
                await trio.sleep(0.2)
                continue
            if reply.succeeded:
                return reply.header.revision
            return reply.responses[0].kvs[0].mod_revision  # type: ignore[union-attr]
    raise AssertionError("could not write the end marker")


async def one_client(
    addresses: list[str],
    number: int,
    workload: Workload,
    rng: random.Random,
    stop_at: float,
) -> None:
    # Each client starts on a different member.
    rotated = addresses[number % len(addresses) :] + addresses[: number % len(addresses)]
    async with etcd.connect(rotated, **CLIENT_OPTIONS) as client:  # type: ignore[arg-type]
        await run_client(client, number, workload, rng, stop_at, MAX_OPS_PER_CLIENT)
