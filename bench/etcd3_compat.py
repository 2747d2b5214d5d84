"""Sequential gets through python-etcd3's API: ``puregrpc_etcd.etcd3`` against python-etcd3.

    python -m bench.etcd3_compat [--rounds 5] [--seconds 3] [--endpoint HOST:PORT]

Each run is a fresh worker process doing ``client.get(key)`` back to back (64 B value) for
``--seconds`` after a warm-up; the two take turns within each round, so a noisy neighbour hurts
both alike. python-etcd3 (``etcd3`` 0.12.0, grpcio) needs protobuf's pure-Python runtime on
protobuf >= 4 (``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``), which is how its users run it
today; ``--theirs-python`` picks another interpreter for it (e.g. a venv with protobuf 3.20).
Prints ops/s per round, the medians and their ratio (above 1: ours is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

KEY = "bench/etcd3/key"
VALUE = b"v" * 64


def _worker(which: str, endpoint: str, seconds: float, warmup: float) -> None:
    host, port = endpoint.rsplit(":", 1)
    if which == "ours":
        from puregrpc_etcd import etcd3
    else:
        import etcd3  # type: ignore[import-not-found,no-redef]

    client = etcd3.client(host=host, port=int(port), timeout=10)
    client.put(KEY, VALUE)
    get = client.get
    end = time.perf_counter() + warmup
    while time.perf_counter() < end:
        get(KEY)
    done = 0
    cpu = time.process_time()
    start = time.perf_counter()
    end = start + seconds
    while True:
        for _ in range(100):
            get(KEY)
        done += 100
        now = time.perf_counter()
        if now >= end:
            break
    # Rate, and CPU per get of the whole process (its threads included: grpcio's, ours).
    print(done / (now - start), (time.process_time() - cpu) / done * 1e6)
    client.close()


def _run(
    which: str, python: str, endpoint: str, seconds: float, warmup: float
) -> tuple[float, float]:
    env = dict(os.environ)
    if which == "theirs":
        env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
    out = subprocess.run(
        [python, "-m", "bench.etcd3_compat", "--worker", which, "--endpoint", endpoint,
         "--seconds", str(seconds), "--warmup", str(warmup)],
        capture_output=True, text=True, env=env, check=True, timeout=seconds + warmup + 60,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )  # fmt: skip
    rate, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(rate), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--endpoint")
    parser.add_argument("--theirs-python", default=sys.executable)
    parser.add_argument("--worker", choices=["ours", "theirs"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.endpoint, args.seconds, args.warmup)
        return
    if args.endpoint:
        _compare(args, args.endpoint)
        return
    from puregrpc_etcd.testing import EtcdServer

    with EtcdServer(args=["--unsafe-no-fsync"]) as server:
        _compare(args, server.endpoint)


def _compare(args: argparse.Namespace, endpoint: str) -> None:
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    for round_ in range(args.rounds):
        ours.append(_run("ours", sys.executable, endpoint, args.seconds, args.warmup))
        theirs.append(_run("theirs", args.theirs_python, endpoint, args.seconds, args.warmup))
        print(f"round {round_ + 1}: puregrpc_etcd.etcd3 {ours[-1][0]:,.0f} gets/s "
              f"({ours[-1][1]:.0f} us CPU each), python-etcd3 {theirs[-1][0]:,.0f} gets/s "
              f"({theirs[-1][1]:.0f} us CPU each)")  # fmt: skip
    print(f"| median of {args.rounds} rounds | puregrpc_etcd.etcd3 | python-etcd3 | ratio |")
    print("|---|---|---|---|")
    a, b = (statistics.median(r for r, _ in runs) for runs in (ours, theirs))
    print(f"| sequential gets/s | {a:,.0f} | {b:,.0f} | {a / b:.2f} |")
    a, b = (statistics.median(c for _, c in runs) for runs in (ours, theirs))
    print(f"| client CPU per get (us) | {a:.0f} | {b:.0f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
