"""etcd's benchmark report (``pkg/report/report.go`` and ``timeseries.go``), sans-IO.

``Report`` collects the results of one kind of request (start time, latency, or an error) and
renders them as etcd's tool does: the ``Summary:`` block, the 11-line response time histogram
with ``∎`` bars scaled to 40, the latency distribution at etcd's percentiles with its index
rule, the error distribution and, with ``--sample``, the per-second CSV. Reports of several
worker processes merge into one before rendering.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from decimal import Decimal

from puregrpc_etcd._cli.formats import go_duration

__all__ = ["PERCENTILES", "Report", "Stats", "go_float", "percentiles"]

BAR_CHAR = "∎"
PERCENTILES = (10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9)
DEFAULT_PRECISION = "%4.4f"
PRECISE = "%g"


def go_g(value: float) -> str:
    """Go's ``%g``: the shortest digits that read back as ``value``, in exponent form when the
    decimal exponent is below -4 or at least 6 (``strconv.FormatFloat(v, 'g', -1, 64)``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    point = len(digit_tuple) + exponent  # the decimal point's place after the first digit
    exp = point - 1
    minus = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{minus}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return minus + digits + "0" * (point - len(digits))
    return f"{minus}{digits[:point]}.{digits[point:]}"


def go_float(precision: str, value: float) -> str:
    """``fmt.Sprintf(precision, value)`` for the two precisions the tool uses."""
    if precision == PRECISE:
        return go_g(value)
    if math.isnan(value):
        return "NaN"
    return precision % value


def percentiles(sorted_latencies: list[float]) -> list[float]:
    """etcd's rule: the p-th percentile is the first latency whose index ``i`` has
    ``i * 100 / n >= p`` (0 where no index reaches it)."""
    data = [0.0] * len(PERCENTILES)
    n = len(sorted_latencies)
    j = 0
    for i in range(n):
        if j >= len(PERCENTILES):
            break
        if i * 100.0 / n >= PERCENTILES[j]:
            data[j] = sorted_latencies[i]
            j += 1
    return data


@dataclass
class Stats:
    """``report.Stats``: the figures the summary prints (and ``check perf`` judges)."""

    total: float
    fastest: float
    slowest: float
    average: float
    stddev: float
    rps: float
    latencies: list[float]
    errors: dict[str, int]


@dataclass
class Report:
    """The results of one kind of request: ``add`` a success (its start as Unix seconds and its
    latency in seconds) or ``add_error``; ``merge`` the parts from other workers."""

    starts: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]
    latencies: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, start: float, latency: float) -> None:
        self.starts.append(start)
        self.latencies.append(latency)

    def add_error(self, text: str) -> None:
        self.errors[text] = self.errors.get(text, 0) + 1

    def merge(self, other: Report) -> None:
        self.starts.extend(other.starts)
        self.latencies.extend(other.latencies)
        for text, count in other.errors.items():
            self.errors[text] = self.errors.get(text, 0) + count

    @property
    def count(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    def stats(self, total: float) -> Stats:
        """``processResults``: ``total`` is the wall time of the run, in seconds."""
        lats = sorted(self.latencies)
        n = len(lats)
        average = math.fsum(lats) / n if n else math.nan
        stddev = math.sqrt(math.fsum((x - average) ** 2 for x in lats) / n) if n else math.nan
        return Stats(
            total=total,
            fastest=lats[0] if n else 0.0,
            slowest=lats[-1] if n else 0.0,
            average=average,
            stddev=stddev,
            rps=n / total if total > 0 else math.inf,
            latencies=lats,
            errors=dict(self.errors),
        )

    def render(self, total: float, *, precise: bool = False, sample: bool = False) -> str:
        """``report.String()``, byte for byte in form."""
        precision = PRECISE if precise else DEFAULT_PRECISION
        stats = self.stats(total)

        def secs(value: float) -> str:
            return go_float(precision, value) + " secs"

        text = ""
        if stats.latencies:
            text += "\nSummary:\n"
            text += f"  Total:\t{secs(stats.total)}.\n"
            text += f"  Slowest:\t{secs(stats.slowest)}.\n"
            text += f"  Fastest:\t{secs(stats.fastest)}.\n"
            text += f"  Average:\t{secs(stats.average)}.\n"
            text += f"  Stddev:\t{secs(stats.stddev)}.\n"
            text += f"  Requests/sec:\t{go_float(precision, stats.rps)}\n"
            text += histogram(stats, precision)
            text += "\nLatency distribution:\n"
            for pctl, value in zip(PERCENTILES, percentiles(stats.latencies)):
                if value > 0:
                    text += f"  {go_g(pctl)}% in {secs(value)}.\n"
            if sample:
                text += self.time_series() + "\n"
        if stats.errors:
            text += "\nError distribution:\n"
            for error, count in stats.errors.items():
                text += f"  [{count}]\t{error}\n"
        return text

    def time_series(self) -> str:
        """``TimeSeries.String()``: per Unix second, the min, average and max latency and the
        number of requests that started in it, empty seconds filled in."""
        seconds: dict[int, list[int]] = {}  # second -> [min, max, total, count] in ns
        for start, latency in zip(self.starts, self.latencies):
            second = math.floor(start)
            lat = round(latency * 1e9)
            point = seconds.get(second)
            if point is None:
                seconds[second] = [lat, lat, lat, 1]
                continue
            if lat != 0:
                point[0] = min(point[0], lat)
            point[1] = max(point[1], lat)
            point[2] += lat
            point[3] += 1
        if seconds:
            for second in range(min(seconds), max(seconds)):
                seconds.setdefault(second, [0, 0, 0, 0])
        rows = ["UNIX-SECOND,MIN-LATENCY-MS,AVG-LATENCY-MS,MAX-LATENCY-MS,AVG-THROUGHPUT"]
        for second in sorted(seconds):
            low, high, total, count = seconds[second]
            average = _go_div(total, count) if count else 0
            rows.append(f"{second},{_ms(low)},{_ms(average)},{_ms(high)},{count}")
        csv = "".join(row + "\n" for row in rows)
        return f"\nSample in one second (unix latency throughput):\n{csv}"


def _ms(nanoseconds: int) -> str:
    return go_duration(nanoseconds / 1e9)


def _go_div(a: int, b: int) -> int:
    """Go's integer division, which truncates toward zero."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


def histogram(stats: Stats, precision: str) -> str:
    """``report.histogram()``: 10 equal buckets from the fastest, plus the slowest."""
    bucket_count = 10
    size = (stats.slowest - stats.fastest) / bucket_count
    buckets = [stats.fastest + size * i for i in range(bucket_count)] + [stats.slowest]
    counts = [0] * (bucket_count + 1)
    largest = 0
    index = 0
    lats = stats.latencies
    i = 0
    while i < len(lats):
        if lats[i] <= buckets[index]:
            i += 1
            counts[index] += 1
            largest = max(largest, counts[index])
        elif index < len(buckets) - 1:
            index += 1
        else:  # unreachable with sorted latencies; a guard against a float surprise
            counts[index] += 1
            i += 1
    text = "\nResponse time histogram:\n"
    for bucket, count in zip(buckets, counts):
        bar = BAR_CHAR * (count * 40 // largest if largest else 0)
        text += f"  {go_float(precision, bucket)} [{count}]\t|{bar}\n"
    return text
