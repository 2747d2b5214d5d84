"""The parts of the linearizability fault run: clients that record every call they make (invoke,
complete, outcome), and a nemesis that crashes, stops, black-holes and resets members (through
a ``fault_proxy.FaultProxy`` in front of each) while they run."""

from __future__ import annotations

import math
import os
import random
import signal
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

import trio
from fault_proxy import FaultProxy
from linearizability import Operation, Value

import puregrpc_etcd as etcd
from puregrpc_etcd.errors import EtcdError
from puregrpc_etcd.testing import EtcdCluster, EtcdServer
from puregrpc_etcd.txn import Compare, Op

# The workload.


@dataclass
class Record:
    """An operation and what etcd said about it beyond the checker's model."""

    op: Operation
    revision: int = 0  # the reply header's store revision (0 when there was no reply)
    mod_revision: int = 0  # a get's key: the revision of the write it read (0: absent)
    took: float = 0.0  # seconds from invoke until the call returned or raised


@dataclass
class Workload:
    keys: list[str]
    records: list[Record] = field(default_factory=list)
    _values: int = 0

    def unique_value(self, client: int) -> bytes:
        self._values += 1
        return f"c{client}-{self._values}".encode()


def _first_value(kvs: object) -> Value:
    items = list(kvs)  # type: ignore[call-overload]
    return items[0].value if items else None


async def run_client(  # noqa: PLR0917 - one call site, all positional for readability
    client: etcd.Client,
    number: int,
    workload: Workload,
    rng: random.Random,
    stop_at: float,
    max_ops: int,
) -> None:
    """Random gets, puts, compare-and-sets and deletes until ``stop_at`` (at most ``max_ops``),
    each recorded with its outcome: ok, failed (the client says the server never got it) or
    unknown (any other error: it may have been applied)."""
    seen: dict[str, Value] = {}
    for _ in range(max_ops):
        if trio.current_time() >= stop_at:
            return
        key = rng.choice(workload.keys)
        draw = rng.random()
        kind = "get" if draw < 0.35 else "put" if draw < 0.65 else "cas" if draw < 0.9 else "delete"
        value = workload.unique_value(number) if kind in ("put", "cas") else None
        expected = seen.get(key)
        fields: dict[str, object] = {}
        revision = mod_revision = 0
        invoke = trio.current_time()
        try:
            if kind == "get":
                reply = await client.get(key)
                fields["observed"] = _first_value(reply.kvs)
                mod_revision = reply.kvs[0].mod_revision if reply.kvs else 0
                revision = reply.header.revision
            elif kind == "put":
                put = await client.put(key, value, prev_kv=True)
                fields["observed"] = None if put.prev_kv is None else put.prev_kv.value
                revision = put.header.revision
            elif kind == "delete":
                deleted = await client.delete(key, prev_kv=True)
                fields["observed"] = _first_value(deleted.prev_kvs)
                revision = deleted.header.revision
            else:
                compare = (
                    Compare.create_revision(key) == 0
                    if expected is None
                    else Compare.value(key) == expected
                )
                txn = await client.txn([compare], [Op.put(key, value)], [Op.get(key)])
                fields["succeeded"] = txn.succeeded
                if txn.succeeded:
                    fields["observed"] = expected
                else:
                    fields["observed"] = _first_value(txn.responses[0].kvs)  # type: ignore[union-attr]
                revision = txn.header.revision
            outcome = "ok"
            note = ""
        except EtcdError as error:
            outcome = "failed" if getattr(error, "not_processed", False) else "unknown"
            note = f"{type(error).__name__}: {error}"[:160]
            fields = {}
        complete = trio.current_time()
        op = Operation(
            key=key,
            kind=kind,  # type: ignore[arg-type]
            invoke=invoke,
            complete=math.inf if outcome == "unknown" else complete,
            outcome=outcome,  # type: ignore[arg-type]
            value=value,
            expected=expected if kind == "cas" else None,
            client=number,
            index=len(workload.records),
            note=note,
            **fields,  # type: ignore[arg-type]
        )
        workload.records.append(Record(op, revision, mod_revision, complete - invoke))
        # The next cas of this key expects what this client last knew of it.
        if outcome == "ok":
            wrote = kind == "put" or (kind == "cas" and op.succeeded)
            seen[key] = None if kind == "delete" else value if wrote else op.observed
        elif outcome == "unknown":
            seen.pop(key, None)
        await trio.sleep(rng.random() * 0.01)


# The nemesis.

FAULTS = ("kill-leader", "stop-leader", "stop-follower", "blackhole", "reset")


async def _to_thread(function: Callable[[], object]) -> object:
    return await trio.to_thread.run_sync(function)


async def wait_healthy(cluster: EtcdCluster, seconds: float = 30) -> None:
    with trio.fail_after(seconds):
        while True:
            healthy = [await _to_thread(m.healthy) for m in cluster]
            if all(healthy):
                return
            await trio.sleep(0.1)


async def nemesis(  # noqa: PLR0917 - one call site
    cluster: EtcdCluster,
    proxies: list[FaultProxy],
    rng: random.Random,
    stop_at: float,
    done: Counter[str],
    log: list[str],
) -> None:
    """Fault after fault until ``stop_at``, every kind once in each round (in a random order);
    every fault is undone, and the cluster healthy again, before the next one starts."""
    started = trio.current_time()
    cycle: list[str] = []
    while trio.current_time() < stop_at:
        await trio.sleep(0.5 + rng.random())
        if not cycle:
            cycle = rng.sample(FAULTS, len(FAULTS))
        fault = cycle.pop()
        hold = 1.0 + 4.0 * rng.random()
        at = trio.current_time() - started
        victim: Optional[EtcdServer] = None
        name = ""
        if fault in ("kill-leader", "stop-leader"):
            victim = await trio.to_thread.run_sync(cluster.leader)
        elif fault == "stop-follower":
            victim = rng.choice(await trio.to_thread.run_sync(cluster.followers))
        if fault == "kill-leader":
            assert victim is not None
            victim.kill()
            await trio.sleep(hold)
            await trio.to_thread.run_sync(victim.restart)
        elif fault in ("stop-leader", "stop-follower"):
            assert victim is not None
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGSTOP)
            try:
                await trio.sleep(hold)
            finally:
                os.kill(victim.pid, signal.SIGCONT)
        else:
            proxy = rng.choice(proxies)
            name = f"proxy of {cluster[proxies.index(proxy)].name}"
            if fault == "blackhole":
                proxy.blackhole()
                try:
                    await trio.sleep(hold)
                finally:
                    proxy.heal()
            else:
                proxy.reset()
        if victim is not None:
            name = victim.name
        held = "" if fault == "reset" else f", {hold:.1f} s"
        log.append(f"{at:6.1f} s {fault} ({name}{held})")
        done[fault] += 1
        await wait_healthy(cluster)
