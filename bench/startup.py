"""``python -m bench.startup``: how long the command takes to start and run one call, with
etcdctl beside it, and what ``import puregrpc_etcd`` costs a library user.

    python -m bench.startup [--runs 20] [--endpoint HOST:PORT]

Each command runs ``--runs`` times, the commands taking turns (so that a noisy neighbour hurts
them alike); printed are the median and fastest wall time and the median CPU time (user +
system) of the process, in a markdown table. Without ``--endpoint`` a throwaway etcd is
started. Byte-code must be compiled for a fair figure: with ``PYTHONDONTWRITEBYTECODE`` set
and no ``__pycache__``, every run compiles the package again (this script compiles it first).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shlex
import statistics
import subprocess
import sys
import time

import puregrpc_etcd


def commands(endpoint: str, etcdctl: str | None) -> list[tuple[str, list[str]]]:
    python = sys.executable
    ours = [python, "-m", "puregrpc_etcd", f"--endpoints={endpoint}"]
    rows = [("python -c pass", [python, "-c", "pass"])]
    theirs = [etcdctl, f"--endpoints={endpoint}"] if etcdctl else None
    for args in (["--help"], ["version"], ["get", "k"], ["put", "k", "v"], ["del", "k"]):
        rows.append((f"puregrpc-etcd {' '.join(args)}", ours + args))
        if theirs:
            rows.append((f"etcdctl {' '.join(args)}", theirs + args))
    rows.append(("import puregrpc_etcd", [python, "-c", "import puregrpc_etcd"]))
    use = "import puregrpc_etcd; puregrpc_etcd.Client"
    rows.append(("import puregrpc_etcd, then use Client", [python, "-c", use]))
    return rows


def measure(rows: list[tuple[str, list[str]]], runs: int) -> str:
    wall: dict[str, list[float]] = {name: [] for name, _ in rows}
    cpu: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _ in range(runs):
        for name, argv in rows:
            started = time.perf_counter()
            process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(process.pid, 0)
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(usage.ru_utime + usage.ru_stime)
            if status != 0:
                raise SystemExit(f"{shlex.join(argv)} failed ({status})")
    lines = ["| command | wall median ms | wall min ms | CPU median ms |", "|---|---|---|---|"]
    for name, _ in rows:
        lines.append(
            f"| {name} | {statistics.median(wall[name]) * 1000:.0f} "
            f"| {min(wall[name]) * 1000:.0f} | {statistics.median(cpu[name]) * 1000:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--endpoint", help="a running etcd (default: start a throwaway one)")
    args = parser.parse_args()
    compileall.compile_dir(os.path.dirname(puregrpc_etcd.__file__), quiet=1)
    from puregrpc_etcd.testing import EtcdNotFoundError, EtcdServer, find_etcd_tool

    try:
        etcdctl: str | None = find_etcd_tool("etcdctl")
    except EtcdNotFoundError:
        etcdctl = None
    if args.endpoint:
        print(measure(commands(args.endpoint, etcdctl), args.runs))
        return
    with EtcdServer() as server:
        print(measure(commands(server.endpoint, etcdctl), args.runs))


if __name__ == "__main__":
    main()
