"""Linearizability under faults: concurrent gets, puts, compare-and-sets and deletes on a few keys
of a 3-member cluster while members are killed, stopped, black-holed and reset; the recorded
history must be linearizable, every reply must agree with etcd's own history, and a watcher
must see that history exactly: every revision once, in order.

The run is random; its seed is printed (set ``LIN_SEED`` to repeat the same fault sequence and
workload choices; timing still differs from run to run).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
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
# is given up (keepalive pings while calls wait) before the call's own timeout: its calls then
# fail as UNAVAILABLE, the case where a client might be tempted to repeat a write.
TIMEOUT = 4.0
CLIENT_OPTIONS = {
    "connect_timeout": 1.0,
    "timeout": TIMEOUT,
    "retry_backoff": (0.05, 0.5),
    "keepalive_interval": 1.0,
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
    records: list[Record], truth: dict[int, tuple[str, bytes, bytes]], problems: list[str]
) -> Counter[str]:
    """Each reply against etcd's history; returns how many unknown writes were applied."""
    put_values = Counter(value for kind, _, value in truth.values() if kind == "put")
    duplicated = [value for value, count in put_values.items() if count > 1]
    if duplicated:
        problems.append(f"values written more than once (a write applied twice): {duplicated}")
    written = {value for kind, _, value in truth.values() if kind == "put"}
    unknown: Counter[str] = Counter()
    for record in records:
        op = record.op
        wrote = op.kind == "put" or (op.kind == "cas" and op.succeeded)
        at, expected = record.revision, None
        if op.outcome == "ok" and wrote:
            expected = ("put", op.key.encode(), op.value)
        elif op.outcome == "ok" and op.kind == "delete" and op.observed is not None:
            expected = ("delete", op.key.encode(), b"")
        elif op.outcome == "ok" and op.kind == "get" and record.mod_revision:
            at, expected = record.mod_revision, ("put", op.key.encode(), op.observed)
        elif op.outcome == "failed" and op.kind in ("put", "cas") and op.value in written:
            problems.append(f"a write reported as never sent was applied: {op.describe()}")
        elif op.outcome == "unknown" and op.kind in ("put", "cas"):
            unknown["applied" if op.value in written else "not applied"] += 1
        if expected is not None and truth.get(at) != expected:
            problems.append(f"etcd's history has {truth.get(at)} at {at}: {op.describe()}")
    return unknown


def check_real_time_revisions(records: list[Record], problems: list[str]) -> None:
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
        if revision < newest:
            assert newest_op is not None
            problems.append(
                f"{op.describe()} answered at revision {revision}, older than revision {newest} "
                f"of {newest_op.describe()}, which completed before it began"
            )


def check_watched(watched: list[Event], truth: list[Event], problems: list[str]) -> None:
    if summary(watched) == summary(truth):
        return
    seen, real = summary(watched), summary(truth)
    first = next(
        (i for i, (a, b) in enumerate(zip(seen, real)) if a != b), min(len(seen), len(real))
    )
    problems.append(
        f"the watcher's events differ from etcd's history from event {first} on "
        f"({len(seen)} events watched, {len(real)} in the history): watched "
        f"{seen[first : first + 3]}, history {real[first : first + 3]}"
    )


@pytest.mark.slow
async def test_history_is_linearizable_under_faults(etcd_cluster: EtcdCluster) -> None:
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
    cluster = etcd_cluster
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
                    await run_faults(cluster, proxies, workload, rng, faults, fault_log)
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
    errors = Counter(r.op.note.split(" (")[0] for r in records if r.op.outcome != "ok")
    print(f"errors: {dict(errors.most_common())}")
    for outcome in ("ok", "unknown"):
        took = sorted(r.took for r in records if r.op.outcome == outcome)
        if took:
            print(
                f"{outcome} calls took: median {took[len(took) // 2] * 1000:.1f} ms, "
                f"99th percentile {took[len(took) * 99 // 100] * 1000:.0f} ms, "
                f"max {took[-1]:.2f} s"
            )

    problems: list[str] = []
    # The watcher saw etcd's history exactly: every revision from start to end once, in order.
    check_watched(watched, truth, problems)
    revisions = [e.kv.mod_revision for e in truth]
    if revisions != list(range(start, end_revision + 1)):
        problems.append(f"etcd's history skips revisions: {revisions[:3]}...{revisions[-3:]}")
    history = {e.kv.mod_revision: (e.type, e.kv.key, e.kv.value) for e in truth}
    applied = check_replies(records, history, problems)
    print(f"unknown writes found in etcd's history: {dict(applied)}")
    check_real_time_revisions(records, problems)

    began = time.perf_counter()
    result = check([r.op for r in records], max_steps=MAX_CHECK_STEPS)
    took = time.perf_counter() - began
    searched = {key: (k.operations, k.pruned, k.steps) for key, k in result.keys.items()}
    print(f"checker: {took:.2f} s, {result.steps} steps; per key (ops, pruned, steps) {searched}")
    if not result.linearizable:
        problems.append(result.explain([r.op for r in records]))
    if problems:
        saved = save_history(records)
        pytest.fail(f"{reproduce}\nthe history is in {saved}\n" + "\n".join(problems[:20]))

    # Nothing hung: every call returned or raised within its deadline (the client's timeout
    # covers all its attempts), whatever the fault; the slack is for a loaded machine.
    slowest = max(records, key=lambda r: r.took)
    assert slowest.took < TIMEOUT + 2.0, f"{slowest.op.describe()} took {slowest.took:.2f} s"

    # Not vacuous: enough calls succeeded, and every kind of fault happened.
    assert outcomes["ok"] >= MIN_OK_OPS, reproduce
    assert all(kind in kinds for kind in [("get", "ok"), ("put", "ok"), ("cas", "ok")])
    assert any(r.op.kind == "cas" and r.op.succeeded for r in records)
    assert any(r.op.kind == "delete" and r.op.observed is not None for r in records)
    assert set(faults) == set(FAULTS), f"some faults never ran: {dict(faults)}; {reproduce}"


def save_history(records: list[Record]) -> str:
    """Write the history as JSON lines (one operation each) for a look after a failure."""
    fd, path = tempfile.mkstemp(prefix="linearizability-", suffix=".jsonl")
    with os.fdopen(fd, "w") as out:
        for record in records:
            fields = {k: v for k, v in vars(record.op).items() if v is not None}
            for name in ("value", "expected", "observed"):
                if isinstance(fields.get(name), bytes):
                    fields[name] = fields[name].decode()
            fields.update(revision=record.revision, mod_revision=record.mod_revision)
            out.write(json.dumps(fields, default=str) + "\n")
    return path


async def run_faults(  # noqa: PLR0917 - one call site
    cluster: EtcdCluster,
    proxies: list[FaultProxy],
    workload: Workload,
    rng: random.Random,
    faults: Counter[str],
    fault_log: list[str],
) -> None:
    """The clients and the nemesis, for ``FAULT_SECONDS``."""
    addresses = [proxy.address for proxy in proxies]
    stop_at = trio.current_time() + FAULT_SECONDS
    # The last fault may outlast stop_at by its hold and a restart.
    with trio.fail_after(FAULT_SECONDS + 90):
        async with trio.open_nursery() as workers:
            nemesis_rng = random.Random(rng.random())
            workers.start_soon(nemesis, cluster, proxies, nemesis_rng, stop_at, faults, fault_log)
            for number in range(CLIENTS):
                workers.start_soon(
                    one_client, addresses, number, workload, random.Random(rng.random()), stop_at
                )


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
