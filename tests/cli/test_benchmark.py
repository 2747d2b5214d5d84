"""``benchmark`` and ``check perf`` against a real etcd, with small totals."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest
import trio
from cli_support import COMMAND_TIMEOUT, Runner, command, reap

import puregrpc_etcd as etcd
from puregrpc_etcd.testing import EtcdServer

_SECS = r"\d+\.\d{4} secs\."
REPORT = (
    r"\nSummary:\n"
    rf"  Total:\t{_SECS}\n  Slowest:\t{_SECS}\n  Fastest:\t{_SECS}\n"
    rf"  Average:\t{_SECS}\n  Stddev:\t{_SECS}\n"
    r"  Requests/sec:\t\d+\.\d{4}\n"
    r"\nResponse time histogram:\n"
    r"(?:  \d+\.\d{4} \[\d+\]\t\|∎*\n){11}"
    r"\nLatency distribution:\n"
    rf"(?:  (?:10|25|50|75|90|95|99|99\.9)% in {_SECS}\n)+"
)


def _wait_for_writes(endpoint: str, prefix: str) -> None:
    """Return once the benchmark's first key under ``prefix`` is there (its workers run)."""

    async def wait() -> None:
        async with etcd.connect(endpoint) as client:
            with trio.fail_after(COMMAND_TIMEOUT):
                while not (await client.get(prefix, prefix=True, count_only=True)).count:  # noqa: ASYNC110 - polls the server
                    await trio.sleep(0.05)

    trio.run(wait)


def _histogram_total(report: str) -> int:
    return sum(int(n) for n in re.findall(r"^  \d+\.\d{4} \[(\d+)\]\t\|", report, re.M))


def _count(cli: Runner, prefix: str) -> int:
    reply = json.loads(cli("get", prefix, "--prefix", "--count-only", "-w", "json").out)
    return int(reply.get("count", 0))


def test_put_report_matches_etcds_format_and_writes_only_its_keys(cli: Runner, prefix: str) -> None:
    result = cli(
        "benchmark", "--procs", "1", "--clients", "3", "put", "--total", "40",
        "--prefix", prefix, "--sequential-keys", "--key-space-size", "5",
    )  # fmt: skip
    assert (result.code, result.err) == (0, b"")
    assert re.fullmatch(REPORT + r"\n", result.text), result.text
    assert _histogram_total(result.text) == 40
    assert _count(cli, prefix) == 5
    keys = json.loads(cli("get", prefix, "--prefix", "--keys-only", "-w", "json").out)["kvs"]
    first = base64.b64decode(keys[0]["key"])
    assert first == prefix.encode() + b"\x00" * 8  # varint(0) in an 8-byte key


def test_processes_merge_into_one_report_with_samples(cli: Runner, prefix: str) -> None:
    result = cli(
        "benchmark", "put", "--procs=2", "--clients=4", "--conns=2", "--sample",
        "--total=60", "--prefix", prefix,
    )  # fmt: skip
    assert (result.code, result.err) == (0, b""), result.error
    report, _, sample = result.text.partition("\nSample in one second")
    assert re.fullmatch(REPORT, report), result.text
    assert _histogram_total(report) == 60
    head, _, csv = sample.partition(
        "\nUNIX-SECOND,MIN-LATENCY-MS,AVG-LATENCY-MS,MAX-LATENCY-MS,AVG-THROUGHPUT\n"
    )
    assert head == " (unix latency throughput):", sample
    assert csv.endswith("\n\n\n"), sample  # the CSV's, the report's and Println's
    rows = csv[:-3].split("\n")
    assert sum(int(row.rsplit(",", 1)[1]) for row in rows) == 60
    assert all(re.fullmatch(r"\d+,[^,]+,[^,]+,[^,]+,\d+", row) for row in rows)


def test_precise_prints_full_precision_and_target_leader_finds_it(cli: Runner, prefix: str) -> None:
    result = cli(
        "benchmark", "--target-leader", "put", "--precise", "--total", "5", "--prefix", prefix
    )
    assert result.code == 0
    assert re.search(r"  Total:\t\d+\.\d{5,}(?:e-\d+)? secs\.\n", result.text), result.text


def test_range_txn_put_and_lease_keepalive(cli: Runner, prefix: str) -> None:
    cli("put", prefix + "a", "1")
    ranged = cli("benchmark", "range", prefix, prefix + "z", "--total", "20",
                 "--consistency", "s", "--clients", "2", "--procs", "1")  # fmt: skip
    assert ranged.code == 0, ranged.error
    assert ranged.text.startswith("bench with serializable range\n")
    assert re.fullmatch("bench with serializable range\n" + REPORT, ranged.text)
    txn = cli("benchmark", "txn-put", "--total", "10", "--txn-ops", "2", "--key-space-size", "4")
    assert re.fullmatch(REPORT + r"\n", txn.text), txn.text
    leases_before = cli("lease", "list").text
    kept = cli("benchmark", "lease-keepalive", "--total", "12", "--clients", "2", "--procs", "1")
    assert re.fullmatch(REPORT, kept.text), kept.text
    assert cli("lease", "list").text == leases_before  # its leases were revoked


def test_txn_mixed_prints_separate_read_and_write_reports(cli: Runner) -> None:
    result = cli("benchmark", "txn-mixed", "--total", "30", "--rw-ratio", "1", "--procs", "1")
    assert result.code == 0, result.error
    match = re.fullmatch(
        r"bench with linearizable range\n"
        r"Total Read Ops: (\d+)\nDetails:((?:" + REPORT + r")?)\n"
        r"Total Write Ops: (\d+)\nDetails:((?:" + REPORT + r")?)\n",
        result.text,
    )
    assert match, result.text
    assert int(match.group(1)) + int(match.group(3)) == 30


def test_watch_benchmarks(cli: Runner) -> None:
    watch = cli(
        "benchmark", "watch", "--streams", "2", "--watch-per-stream", "3", "--put-total", "10",
        "--watched-key-total", "2", "--sequential-keys", "--key-space-size", "2",
    )  # fmt: skip
    assert watch.code == 0, watch.error
    made, _, received = watch.text.partition("Watch events received summary:\n")
    assert re.fullmatch("Watch creation summary:\n" + REPORT, made), watch.text
    assert _histogram_total(made) == 6
    # Events are timed from their arrival, as the Go tool does: near zero, so the distribution
    # may list no percentile at all.
    assert re.fullmatch(REPORT[: -len("+")] + "*", received), watch.text
    assert _histogram_total(received) == 10 * 3  # each put reaches the 3 watchers of its key
    latency = cli(
        "benchmark", "watch-latency", "--streams", "2", "--watchers-per-stream", "2",
        "--put-total", "8", "--put-rate", "200",
    )  # fmt: skip
    assert latency.code == 0, latency.error
    put, _, events = latency.text.partition("\nWatch events summary:\n")
    assert re.fullmatch("\nPut summary:\n" + REPORT, put), latency.text
    assert _histogram_total(events) == 8 * 4
    got = cli("benchmark", "watch-get", "--watchers", "10", "--streams", "2", "--events", "3")
    assert got.code == 0, got.error
    assert got.text.startswith("Get during watch summary:\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["put", "--total", "0"], "--total: must be at least 1, not 0"),
        (["put", "--rate", "-1"], "--rate: must be a finite number >= 0"),
        (["put", "--key-size", "1", "--key-space-size", "1000"], "cannot hold 1000 keys"),
        (["range", "k", "--consistency", "x"], "--consistency must be l or s"),
        (["txn-put", "--txn-ops", "3"], "expected --txn-ops no larger than --key-space-size"),
        (["--clients", "0", "put"], "--clients: must be at least 1"),
        (["put", "--compact-interval", "-5s"], "--compact-interval"),
    ],
)
def test_bad_flags_are_one_line_errors(cli: Runner, args: list[str], message: str) -> None:
    result = cli("benchmark", *args)
    assert result.code in (1, 128)
    assert result.out == b""
    assert result.error.startswith("Error: ")
    assert message in result.error
    assert result.error.count("\n") == 1


def test_ctrl_c_stops_the_workers_and_prints_what_ran(server: EtcdServer, prefix: str) -> None:
    for procs in ("1", "2"):
        own = f"{prefix}{procs}/"
        process = subprocess.Popen(
            command("--endpoints", server.endpoint, "benchmark", "--procs", procs,
                    "--clients", "2", "put", "--total", "100000000", "--prefix", own),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            _wait_for_writes(server.endpoint, own)
            time.sleep(0.3)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=COMMAND_TIMEOUT)
        finally:
            reap(process)
        assert process.returncode == 130, err
        assert err.decode().endswith("Error: interrupted\n")
        assert re.fullmatch(REPORT + r"\n", out.decode()), out


def test_check_perf_passes_and_deletes_what_it_wrote(cli: Runner, prefix: str) -> None:
    """A healthy etcd passes. The check judges latency, which a machine busy with other work
    can push past 0.5 s on its own; so up to three runs, of which one must pass (a broken
    check fails them all), and each must print etcdctl's lines and delete its keys."""
    outputs = []
    for _ in range(3):
        result = cli(
            "check", "perf", "--load", "s", "--duration", "5", "--prefix", prefix, "--procs", "1"
        )
        assert _count(cli, prefix) == 0
        assert re.fullmatch(
            r"(?:FAIL: Throughput too low: \d+ writes/s\n|PASS: Throughput is \d+ writes/s\n)"
            r"(?:Slowest request took too long: |PASS: Slowest request took )\d+\.\d{6}s\n"
            r"(?:Stddev too high: |PASS: Stddev is )\d+\.\d{6}s\n"
            r"(?:PASS|FAIL)\n",
            result.text,
        ), result.text
        outputs.append(result.text)
        if result.code == 0:
            assert result.text.count("PASS") == 4
            return
        assert result.code == 1
    pytest.fail("check perf failed three times on a healthy etcd:\n" + "\n".join(outputs))


def test_check_perf_refuses_a_prefix_with_keys_and_unknown_loads(cli: Runner, prefix: str) -> None:
    cli("put", prefix + "mine", "keep")
    refused = cli("check", "perf", "--prefix", prefix, "--duration", "1")
    assert refused.code == 3
    assert refused.error == (
        f"Error: prefix \"{prefix}\" has keys. Delete with 'etcdctl del --prefix {prefix}' first\n"
    )
    assert cli("get", prefix + "mine", "--print-value-only").text == "keep\n"
    unknown = cli("check", "perf", "--load", "xxl")
    assert (unknown.code, unknown.error) == (4, "Error: unknown load option xxl\n")


def test_check_perf_fails_as_etcdctl_when_the_server_stalls(
    cli: Runner, server: EtcdServer, prefix: str
) -> None:
    pid = server.pid
    assert pid is not None

    def stall() -> None:
        _wait_for_writes(server.endpoint, prefix)
        time.sleep(0.3)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(1.2)
        finally:
            os.kill(pid, signal.SIGCONT)

    staller = threading.Thread(target=stall)
    staller.start()
    try:
        result = cli("check", "perf", "--duration", "4", "--prefix", prefix, "--procs", "1")
    finally:
        staller.join(timeout=COMMAND_TIMEOUT)
        os.kill(pid, signal.SIGCONT)
    assert result.code == 1, result.text
    assert "Slowest request took too long: " in result.text
    assert result.text.endswith("\nFAIL\n")
    assert _count(cli, prefix) == 0


def test_an_unreachable_endpoint_fails_before_the_run(cli: Runner) -> None:
    for procs in ("1", "2"):
        result = cli(
            "benchmark", "--endpoints", "127.0.0.1:1", "--dial-timeout", "1s", "--procs", procs,
            "--clients", "2", "put", "--total", "2", endpoint=False,
        )  # fmt: skip
        assert (result.code, result.out) == (2, b"")
        assert re.fullmatch(r"Error: cannot connect to any endpoint: [^\n]*\n", result.error)


def test_check_perf_auto_compact_and_defrag_print_as_etcdctl(cli: Runner, prefix: str) -> None:
    result = cli(
        "check", "perf", "--duration", "1", "--prefix", prefix, "--procs", "1",
        "--auto-compact", "--auto-defrag",
    )  # fmt: skip
    assert result.code in (0, 1), result.error
    lines = result.text.splitlines()
    compacting = re.fullmatch(r"Compacting with revision (\d+)", lines[0])
    assert compacting, result.text
    assert lines[1] == f"Compacted with revision {compacting.group(1)}"
    assert lines[2:4] == [f'Defragmenting "{cli.endpoint}"', f'Defragmented "{cli.endpoint}"']
    assert lines[-1] in ("PASS", "FAIL")
    assert _count(cli, prefix) == 0


def test_put_compacts_on_its_interval_and_prints_the_hashkv(cli: Runner, prefix: str) -> None:
    result = cli(
        "benchmark", "--procs", "1", "put", "--total", "60", "--rate", "50", "--prefix", prefix,
        "--compact-interval", "300ms", "--compact-index-delta", "5", "--check-hashkv",
    )  # fmt: skip
    assert result.code == 0, result.error
    report, _, hashkv = result.text.partition("\nHashKV Summary:\n")
    assert re.fullmatch(REPORT + r"\n", report + "\n"), result.text
    assert re.fullmatch(
        rf"\tHashKV: \d+\n\tEndpoint: {re.escape(cli.endpoint)}\n"
        r"\tTime taken to get hashkv: [0-9.]+(?:µs|ms|s)\n\tDB size: [0-9.]+ [kM]?B\n",
        hashkv,
    ), result.text
    status = json.loads(cli("endpoint", "hashkv", "-w", "json").out)[0]["HashKV"]
    assert status["compact_revision"] > 0
