"""``python -m bench`` keeps working: the driver and our worker, against a real etcd, both for a
workload run one client at a time and for the prefix get that clients run taking turns."""

from __future__ import annotations

import os
import sys

import pytest

import puregrpc_etcd as etcd
from puregrpc_etcd.testing import EtcdServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import __main__ as driver  # noqa: E402  (the bench lives beside the package)
from bench import workloads as w  # noqa: E402


async def _store_prefix_keys(endpoint: str) -> None:
    value = b"v" * w.PREFIX_VALUE_SIZE
    async with etcd.connect(endpoint) as client:
        for start in range(0, w.PREFIX_KEYS, 128):  # etcd allows 128 operations per txn
            puts = [
                etcd.Op.put(b"bench/prefix/%08d" % index, value)
                for index in range(start, min(start + 128, w.PREFIX_KEYS))
            ]
            await client.txn(compare=[], success=puts, failure=[])


def _ours(name: str = "puregrpc_etcd (this Python)") -> driver.Contender:
    return driver.Contender(name, sys.executable, ["bench.worker_ours"])


@pytest.mark.slow
async def test_prefix_get_taking_turns(server: EtcdServer) -> None:
    await _store_prefix_keys(server.endpoint)
    results = driver.run_paired(
        [_ours("first"), _ours("second")],
        "prefix_10k",
        server.endpoint,
        seconds=0.1,
        first=0,
        warmup=0.1,
    )
    assert sorted(results) == ["first", "second"]
    for result in results.values():
        # The median of at least 10 turns, each of PAIRED_TURN calls of 10,000 keys.
        assert result["calls"] >= 10 * w.PAIRED_TURN
        assert 0 < result["value"] < 5_000
        assert result["faults_per_call"] >= 0


async def test_one_client_workload_and_tables(server: EtcdServer) -> None:
    ours = _ours()
    result = driver.run_one(ours, "get_c16", server.endpoint, seconds=0.3, first=0, warmup=0.1)
    assert result is not None
    assert result["value"] > 0
    assert result["cpu_us"] > 0
    driver.record(ours, "get_c16", result, 0, 1.0)
    table = driver.table([ours], ["get_c16"])
    assert "| get_c16 | ops/s |" in table
    assert "get_c16" in driver.cpu_table([ours], ["get_c16"])


async def test_memory_per_in_flight_call_leaves_nothing_behind(server: EtcdServer) -> None:
    # 1,000 v3lock calls wait behind one holder; each on a lease the worker revokes at the end.
    result = driver.run_one(_ours(), "mem_call", server.endpoint, seconds=1, first=0, warmup=0)
    assert result is not None
    assert 0 < result["value"] < 100  # KiB per call
    async with etcd.connect(server.endpoint) as client:
        assert (await client.get(b"bench/mem-lock/", prefix=True, count_only=True)).count == 0
        assert await client.leases() == []


def test_a_failing_worker_is_reported_not_raised(
    server: EtcdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # The worker exits at once on a workload it does not know; the round goes on without it.
    assert (
        driver.run_paired(
            [_ours()], "no_such_workload", server.endpoint, seconds=0.1, first=0, warmup=0.1
        )
        == {}
    )
    assert "paired run failed" in capsys.readouterr().err
    assert driver.run_one(_ours(), "no_such_workload", server.endpoint, seconds=0.1, first=0,
                          warmup=0.1) is None  # fmt: skip
    assert "failed: unknown workload no_such_workload" in capsys.readouterr().err
