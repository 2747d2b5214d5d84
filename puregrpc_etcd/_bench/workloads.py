"""The requests of each benchmark that loops over ``--total`` requests (or a duration).

A workload turns request number ``i`` into ``(report, call)``: which of its reports the result
goes to, and the call to make on one client. They mirror ``tools/benchmark/cmd/*.go`` and
``etcdctl check perf``; plain data (a ``Plan``) describes them so that worker processes can
rebuild them.
"""

from __future__ import annotations

import contextlib
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Tuple

from puregrpc_etcd._bench.keys import KeyBuffer, sequential_key, varint
from puregrpc_etcd.errors import EtcdError
from puregrpc_etcd.txn import Op

if TYPE_CHECKING:
    from puregrpc_etcd._cli.session import Settings
    from puregrpc_etcd.client import Client

Call = Callable[["Client"], Awaitable[object]]
Request = Tuple[int, Call]

# The names of each workload's reports, in the order its requests number them.
REPORTS = {
    "put": ("put",),
    "range": ("range",),
    "txn-put": ("txn-put",),
    "txn-mixed": ("txn-mixed-read", "txn-mixed-write"),
    "lease-keepalive": ("lease-keepalive",),
    "check-perf": ("check-perf",),
}


@dataclass
class Plan:
    """One benchmark run: what to send, how much, how fast, over how many connections."""

    workload: str
    settings: Settings
    conns: int = 1
    clients: int = 1
    total: int | None = 10000
    rate: float = 0.0  # requests per second over all processes; 0 is no limit
    duration: float | None = None  # stop issuing after this many seconds
    timeout: float | None = None  # of each request
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def report_names(self) -> tuple[str, ...]:
        return REPORTS[self.workload]


class Workload:
    """Builds the requests of one worker's share; ``seed`` varies its random draws."""

    def __init__(self, plan: Plan, seed: int) -> None:
        self.plan = plan
        self.params = plan.params
        self.random = random.Random(seed)
        self.leases: dict[int, int] = {}  # stream number -> lease id (lease-keepalive)
        self.keys = KeyBuffer(int(self.params.get("key_size", 8)), seed)

    def request(self, index: int, stream: int) -> Request:
        return getattr(self, "_" + self.plan.workload.replace("-", "_"))(index, stream)  # type: ignore[no-any-return]

    def _key(self, index: int) -> bytes:
        p = self.params
        if p.get("sequential_keys"):
            return sequential_key(index, p["key_space_size"], p["key_size"])
        return self.keys.random_key(p["key_space_size"])

    def _put(self, index: int, stream: int) -> Request:
        key = self.params.get("prefix", b"") + self._key(index)
        value = self.params["value"]
        return 0, lambda client: client.put(key, value, timeout=self.plan.timeout)

    def _range(self, index: int, stream: int) -> Request:
        p = self.params
        options = {
            "range_end": p.get("end") or None,
            "limit": p.get("limit", 0),
            "serializable": p.get("consistency") == "s",
            "keys_only": bool(p.get("keys_only")),
            "count_only": bool(p.get("count_only")),
        }
        key = p["key"]
        return 0, lambda client: client.get(key, timeout=self.plan.timeout, **options)

    def _txn_put(self, index: int, stream: int) -> Request:
        p = self.params
        ops = p["txn_ops"]
        value = p["value"]
        puts = [
            Op.put(sequential_key(index * ops + j, p["key_space_size"], p["key_size"]), value)
            for j in range(ops)
        ]
        return 0, lambda client: client.txn(success=puts, timeout=self.plan.timeout)

    def _txn_mixed(self, index: int, stream: int) -> Request:
        p = self.params
        ratio = p["rw_ratio"]
        if self.random.random() < ratio / (1 + ratio):
            # Go's OpGet("", WithRange(end), WithPrefix(), WithLimit(n)): WithPrefix on the
            # empty key wins, so it reads the whole keyspace up to the limit.
            read = Op.get(b"", prefix=True, limit=p["limit"], serializable=p["consistency"] == "s")
            return 0, lambda client: client.txn(success=[read], timeout=self.plan.timeout)
        key = sequential_key(index, p["key_space_size"], p["key_size"])
        write = Op.put(key, p["value"])
        return 1, lambda client: client.txn(success=[write], timeout=self.plan.timeout)

    async def prepare(self, client: Client, stream: int) -> None:
        """What a stream does before the timed run: lease-keepalive grants its lease."""
        if self.plan.workload == "lease-keepalive":
            self.leases[stream] = (await client.grant(100, timeout=self.plan.timeout)).id

    def _lease_keepalive(self, index: int, stream: int) -> Request:
        lease = self.leases[stream]
        return 0, lambda client: client.keepalive_once(lease, timeout=self.plan.timeout)

    def _check_perf(self, index: int, stream: int) -> Request:
        key = self.params["prefix"] + varint_key(self.random.randrange(2**63 - 1), 256)
        value = bytes(1024)
        return 0, lambda client: client.put(key, value, timeout=self.plan.timeout)

    async def cleanup(self, client: Client) -> None:
        """Revoke the leases this share granted (nothing else is ever deleted here)."""
        # Best effort: they expire after 100 s anyway.
        with contextlib.suppress(EtcdError, OSError):
            for lease in self.leases.values():
                await client.revoke(lease, timeout=5)


def varint_key(value: int, size: int) -> bytes:
    head = varint(value)
    return head + bytes(size - len(head))


class Limiter:
    """``rate.NewLimiter(r, 1)``: one request every ``1/r`` seconds, no bursts."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = -math.inf

    def slot(self, now: float) -> float:
        """The time the next request may start (and book it)."""
        if not self.interval:
            return now
        start = max(self.next, now)
        self.next = start + self.interval
        return start
