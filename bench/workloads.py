"""Workload definitions shared by the driver and the per-client workers.

A workload is measured inside one worker process per client, so each client runs on its own
interpreter (CPython or PyPy) and event loop (trio or asyncio) and nothing is shared but etcd.
"""

from __future__ import annotations

from typing import Awaitable, Callable

PREFIX_KEYS = 10_000
PREFIX_VALUE_SIZE = 256
REPLAY_EVENTS = 50_000
FANOUT_WATCHERS = 100
FANOUT_EVENTS = 500
KEEPALIVE_LEASES = 1_000

# name -> (unit, higher_is_better, description)
WORKLOADS: dict[str, tuple[str, bool, str]] = {
    "get_seq": ("ops/s", True, "sequential get of one key"),
    "put_seq": ("ops/s", True, "sequential put of one key"),
    "get_c1": ("ops/s", True, "1 concurrent get"),
    "put_c1": ("ops/s", True, "1 concurrent put"),
    "get_c16": ("ops/s", True, "16 concurrent gets on one client"),
    "put_c16": ("ops/s", True, "16 concurrent puts on one client"),
    "get_c128": ("ops/s", True, "128 concurrent gets on one client"),
    "put_c128": ("ops/s", True, "128 concurrent puts on one client"),
    "prefix_10k": (
        "ms",
        False,
        f"one prefix get of {PREFIX_KEYS:,} x {PREFIX_VALUE_SIZE} B values",
    ),
    "watch_replay": ("events/s", True, f"{REPLAY_EVENTS:,} stored events to one watcher"),
    "watch_fanout": ("events/s", True, f"{FANOUT_EVENTS} puts to {FANOUT_WATCHERS} watchers"),
    "lease_keepalive": ("CPU %", False, f"keepalive of {KEEPALIVE_LEASES:,} leases (ttl 6 s)"),
    "mem_watcher": ("KiB", False, "memory per idle watcher (1,000 watchers)"),
    "mem_call": ("KiB", False, "memory per in-flight call (1,000 calls)"),
}

MAIN = ["get_seq", "put_seq", "get_c128", "put_c128", "prefix_10k"]
DEFAULT = [
    "get_seq", "put_seq", "get_c1", "put_c1", "get_c16", "put_c16", "get_c128", "put_c128",
    "prefix_10k", "watch_replay", "watch_fanout", "lease_keepalive", "mem_watcher", "mem_call",
]  # fmt: skip


def default_warmup() -> float:
    """Seconds of the workload run before measuring: PyPy's JIT needs seconds of the hot loop
    before it settles (grpclib's sequential gets reach their speed only after about 10 s), CPython
    only its caches. Peers on the same interpreter get the same."""
    import platform

    return 12.0 if platform.python_implementation() == "PyPy" else 0.5


def warmup_arg(argv: list[str], index: int) -> float:
    """The warm-up seconds passed by the driver at ``argv[index]``, else the default."""
    return float(argv[index]) if len(argv) > index else default_warmup()


def concurrency(workload: str) -> int:
    """How many concurrent tasks a get_cN / put_cN workload runs (1 for sequential ones)."""
    if "_c" in workload:
        return int(workload.rsplit("_c", 1)[1])
    return 1


def cpu_seconds() -> float:
    """CPU time used by this process so far (user + system): on a shared machine, CPU per
    operation varies far less than operations per second."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib() -> int:
    """The process's resident set size in KiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# The prefix get is dominated by etcd's own work (about 15-20 ms of its ~20-25), which drifts by
# several milliseconds over seconds as Go's garbage collector runs; a run per client one after
# the other measured that drift more than the clients. So the driver starts every client's
# worker at once and has them take turns, a few calls each, for the whole round (``PAIRED``).
PAIRED = {"prefix_10k"}
PAIRED_ENV = "BENCH_PAIRED"
PAIRED_TURN = 4


async def prefix_session(
    get_prefix: Callable[[], Awaitable[int]],
    warmup: float,
    seconds: float,
    readline: Callable[[], Awaitable[str]],
) -> dict[str, float]:
    """Time prefix gets (``get_prefix`` returns how many keys it read), in milliseconds, and
    count the page faults they cost (fresh memory from the OS: see bench/README.md).

    Standalone (``BENCH_PAIRED`` unset): warm up, then time calls for ``seconds`` (at least 3).
    Paired: print ``ready`` and obey the driver's lines on stdin: ``warmup``, ``run N`` (answered
    with the N times as a JSON list) and ``end``. The result is the median of all timed calls.
    """
    import json
    import os
    import resource
    import time

    perf = time.perf_counter
    faults = 0

    async def timed(count: int) -> list[float]:
        nonlocal faults
        times = []
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(count):
            start = perf()
            keys = await get_prefix()
            times.append((perf() - start) * 1000)
            assert keys == PREFIX_KEYS, keys
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
        return times

    async def warm() -> None:
        until = perf() + warmup
        while perf() < until:
            await get_prefix()

    times: list[float] = []
    if not os.environ.get(PAIRED_ENV):
        await warm()
        deadline = perf() + seconds
        while len(times) < 3 or (perf() < deadline and len(times) < 200):
            times += await timed(1)
    else:
        print("ready", flush=True)
        while True:
            command = (await readline()).split()
            if not command or command[0] == "end":
                break
            if command[0] == "warmup":
                await warm()
                print("warm", flush=True)
            elif command[0] == "run":
                batch = await timed(int(command[1]))
                times += batch
                print(json.dumps(batch), flush=True)
            else:
                raise SystemExit(f"unknown command {command!r}")
    times.sort()
    return {
        "value": times[len(times) // 2],
        "calls": len(times),
        "faults_per_call": faults / len(times),
    }
