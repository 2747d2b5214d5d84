"""The benchmark report against etcd's ``pkg/report``, on hand-computed latency lists, and the
keys etcd's benchmark writes."""

from __future__ import annotations

import pytest

from puregrpc_etcd._bench.keys import KeyBuffer, sequential_key, varint, varint_size
from puregrpc_etcd._bench.report import PERCENTILES, Report, go_float, go_g, percentiles
from puregrpc_etcd._bench.workloads import Limiter


def test_percentiles_follow_etcds_index_rule() -> None:
    # report_test.go's cases: 1 in 100 is the 99th percentile, 1 in 1000 the 99.9th.
    nums = [0.0] * 100
    nums[99] = 1.0
    assert percentiles(nums)[-2] == 1.0
    nums = [0.0] * 1000
    nums[999] = 1.0
    assert percentiles(nums)[-1] == 1.0
    # One percentile per index at most: four latencies fill only 10, 25 and 50.
    assert percentiles([0.1, 0.2, 0.3, 0.4]) == [0.2, 0.3, 0.4, 0, 0, 0, 0, 0]
    assert len(PERCENTILES) == 8


def _report(latencies: list[float], start: float = 1000.0) -> Report:
    report = Report()
    for latency in latencies:
        report.add(start, latency)
    return report


def test_summary_histogram_and_distribution_as_etcd_prints_them() -> None:
    # Average 0.25; stddev sqrt((0.15² + 0.05² + 0.05² + 0.15²) / 4) = 0.1118; 4 in 2 s.
    text = _report([0.4, 0.1, 0.3, 0.2]).render(2.0)
    bar = "∎" * 40
    assert text == (
        "\nSummary:\n"
        "  Total:\t2.0000 secs.\n"
        "  Slowest:\t0.4000 secs.\n"
        "  Fastest:\t0.1000 secs.\n"
        "  Average:\t0.2500 secs.\n"
        "  Stddev:\t0.1118 secs.\n"
        "  Requests/sec:\t2.0000\n"
        "\nResponse time histogram:\n"
        f"  0.1000 [1]\t|{bar}\n"
        "  0.1300 [0]\t|\n"
        "  0.1600 [0]\t|\n"
        "  0.1900 [0]\t|\n"
        f"  0.2200 [1]\t|{bar}\n"
        "  0.2500 [0]\t|\n"
        "  0.2800 [0]\t|\n"
        f"  0.3100 [1]\t|{bar}\n"
        "  0.3400 [0]\t|\n"
        "  0.3700 [0]\t|\n"
        f"  0.4000 [1]\t|{bar}\n"
        "\nLatency distribution:\n"
        "  10% in 0.2000 secs.\n"
        "  25% in 0.3000 secs.\n"
        "  50% in 0.4000 secs.\n"
    )


def test_bars_scale_to_forty_for_the_fullest_bucket() -> None:
    # 7 at 1 ms, 2 at 2 ms, 1 at 11 ms: buckets 1, 2, ..., 11 ms; bars 40, 11 (2*40//7), 5.
    text = _report([0.001] * 7 + [0.002] * 2 + [0.011]).render(1.0)
    lines = text.split("\nResponse time histogram:\n")[1].split("\n\n")[0].splitlines()
    assert len(lines) == 11
    assert lines[0] == "  0.0010 [7]\t|" + "∎" * 40
    assert lines[1] == "  0.0020 [2]\t|" + "∎" * 11
    assert lines[10] == "  0.0110 [1]\t|" + "∎" * 5
    assert all(line.endswith("[0]\t|") for line in lines[2:10])


def test_precise_uses_gos_shortest_g() -> None:
    text = _report([0.25, 0.25]).render(0.5, precise=True)
    assert "  Total:\t0.5 secs.\n  Slowest:\t0.25 secs.\n" in text
    assert "  Stddev:\t0 secs.\n  Requests/sec:\t4\n" in text
    assert text.endswith("\nLatency distribution:\n  10% in 0.25 secs.\n")
    cases = {
        0.25: "0.25",
        100.0: "100",
        123456.0: "123456",
        1234567.0: "1.234567e+06",
        1e21: "1e+21",
        0.0001: "0.0001",
        0.00001234: "1.234e-05",
        99.9: "99.9",
        -2.5: "-2.5",
        0.1 + 0.2: "0.30000000000000004",
    }
    for value, expected in cases.items():
        assert go_g(value) == expected, value
    assert go_float("%4.4f", 1234.56789) == "1234.5679"


def test_errors_are_counted_apart_from_latencies() -> None:
    report = _report([])
    report.add_error("etcdserver: too many requests")
    report.add_error("etcdserver: too many requests")
    assert report.render(1.0) == "\nError distribution:\n  [2]\tetcdserver: too many requests\n"
    assert report.count == 2
    with_latency = _report([0.5])
    with_latency.add_error("boom")
    text = with_latency.render(1.0)
    assert text.startswith("\nSummary:\n")
    assert text.endswith("\nError distribution:\n  [1]\tboom\n")


def test_sample_prints_per_second_csv_with_empty_seconds_filled() -> None:
    report = Report()
    report.add(100.2, 0.001)
    report.add(100.7, 0.003)
    report.add(102.1, 0.0005)
    text = report.render(3.0, sample=True)
    assert text.endswith(
        "\nSample in one second (unix latency throughput):\n"
        "UNIX-SECOND,MIN-LATENCY-MS,AVG-LATENCY-MS,MAX-LATENCY-MS,AVG-THROUGHPUT\n"
        "100,1ms,2ms,3ms,2\n"
        "101,0s,0s,0s,0\n"
        "102,500µs,500µs,500µs,1\n"
        "\n"
    )


def test_merged_parts_report_as_one() -> None:
    one, two = _report([0.1, 0.2]), _report([0.3, 0.4])
    two.add_error("x")
    one.merge(two)
    assert one.render(2.0) == _report([0.1, 0.2, 0.3, 0.4]).render(2.0) + (
        "\nError distribution:\n  [1]\tx\n"
    )


def test_varint_is_gos_putvarint() -> None:
    assert varint(0) == b"\x00"
    assert varint(1) == b"\x02"
    assert varint(-1) == b"\x01"
    assert varint(63) == b"\x7e"
    assert varint(64) == b"\x80\x01"
    assert varint(300) == b"\xd8\x04"
    assert varint_size(63) == 1
    assert varint_size(64) == 2


@pytest.mark.parametrize("key_space_size", [1, 7, 100, 300])
def test_sequential_keys_match_gos_reused_buffer(key_space_size: int) -> None:
    buffer = KeyBuffer(8)
    for index in range(3 * key_space_size + 5):
        expected = buffer.put(index % key_space_size)
        assert sequential_key(index, key_space_size, 8) == expected, index


def test_limiter_spaces_requests_without_bursts() -> None:
    limiter = Limiter(10.0)
    assert [limiter.slot(0.0) for _ in range(3)] == [0.0, 0.1, 0.2]
    assert limiter.slot(5.0) == 5.0  # idle time is not saved up
    assert Limiter(0).slot(3.0) == 3.0
