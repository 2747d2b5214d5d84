"""Workload definitions shared by the driver and the per-client workers.

A workload is measured inside one worker process per client, so each client runs on its own
interpreter (CPython or PyPy) and event loop (trio or asyncio) and nothing is shared but etcd.
"""

from __future__ import annotations

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
}

MAIN = ["get_seq", "put_seq", "get_c128", "put_c128", "prefix_10k"]
DEFAULT = [
    "get_seq", "put_seq", "get_c1", "put_c1", "get_c16", "put_c16", "get_c128", "put_c128",
    "prefix_10k", "watch_replay", "watch_fanout", "lease_keepalive", "mem_watcher",
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
