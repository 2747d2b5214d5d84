"""``python -m bench``: puregrpc_etcd against peer clients, interleaved round by round.

Starts a throwaway etcd (tmpfs data dir, ``--unsafe-no-fsync``), runs every workload once per
client per round, each run in a fresh worker process, and prints a markdown table of medians with
ratios to every peer. Peers that are not installed are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

from bench import workloads as w

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Contender:
    name: str
    python: str
    module: list[str]
    results: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def supports(self, workload: str) -> bool:
        if self.module[0] == "bench.worker_ours":
            return True
        return workload.startswith(("get_", "put_")) or workload in ("prefix_10k", "watch_replay")

    def command(
        self, workload: str, endpoint: str, seconds: float, first: int, warmup: float | None
    ) -> list[str]:
        extra = [] if warmup is None else [str(warmup)]
        args = [workload, endpoint, str(seconds), str(first), *extra]
        return [self.python, "-m", *self.module, *args]


def _has(python: str, *modules: str) -> bool:
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return False
    probe = "; ".join(f"import {m}" for m in modules)
    return subprocess.run([python, "-c", probe], capture_output=True, check=False).returncode == 0


def contenders(args: argparse.Namespace) -> list[Contender]:
    found = []
    cpython, pypy = args.python, args.pypy
    if _has(cpython, "puregrpc_etcd", "trio"):
        found.append(Contender("puregrpc_etcd (CPython)", cpython, ["bench.worker_ours"]))
    if pypy and _has(pypy, "puregrpc_etcd", "trio"):
        found.append(Contender("puregrpc_etcd (PyPy)", pypy, ["bench.worker_ours"]))
    if not args.ours_only:
        if _has(cpython, "aetcd"):
            found.append(Contender("aetcd (CPython)", cpython, ["bench.worker_peers", "aetcd"]))
        if _has(cpython, "grpclib"):
            found.append(Contender("grpclib (CPython)", cpython, ["bench.worker_peers", "grpclib"]))
        if pypy and _has(pypy, "grpclib"):
            found.append(Contender("grpclib (PyPy)", pypy, ["bench.worker_peers", "grpclib"]))
    return found


def prepare(endpoint: str, python: str) -> int:
    """Store the prefix keys and the replay history once; return the replay's first revision."""
    out = subprocess.run(
        [python, "-m", "bench.worker_ours", "prepare", endpoint, "0"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=600,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["value"])


def run_one(
    contender: Contender,
    workload: str,
    endpoint: str,
    *,
    seconds: float,
    first: int,
    warmup: float | None,
) -> dict[str, float] | None:
    cmd = contender.command(workload, endpoint, seconds, first, warmup)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {contender.name} {workload}: failed: {tail}", file=sys.stderr)
        return None
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run_paired(
    found: list[Contender],
    workload: str,
    endpoint: str,
    *,
    seconds: float,
    first: int,
    warmup: float | None,
) -> dict[str, dict[str, float]]:
    """One round of a ``w.PAIRED`` workload: every client's worker started at once, warmed up
    one after the other, then taking turns of ``w.PAIRED_TURN`` calls until each has had
    ``seconds`` of turns; returns each client's result (median ms of its calls)."""
    env = dict(os.environ, **{w.PAIRED_ENV: "1"})
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for c in found:
            procs[c.name] = subprocess.Popen(
                c.command(workload, endpoint, seconds, first, warmup),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env=env,
            )
        return _take_turns(procs, workload, seconds)
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
        print(f"  {workload}: paired run failed: {exc}", file=sys.stderr)
        return {}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()


def _take_turns(
    procs: dict[str, subprocess.Popen[str]], workload: str, seconds: float
) -> dict[str, dict[str, float]]:
    def ask(name: str, line: str) -> str:
        proc = procs[name]
        assert proc.stdin is not None
        assert proc.stdout is not None
        if line:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
        answer = proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"{name} {workload} worker exited: {proc.wait()}")
        return answer.strip()

    for name in procs:
        if ask(name, "") != "ready" or ask(name, "warmup") != "warm":
            raise RuntimeError(f"{name} {workload} worker did not start")
    spent = dict.fromkeys(procs, 0.0)
    turns = 0
    # Bounded: a turn is a few calls, and there are at most 1,000 turns.
    while turns < 1000 and (turns < 10 or min(spent.values()) < seconds):
        turns += 1
        for name in procs:
            spent[name] += sum(json.loads(ask(name, f"run {w.PAIRED_TURN}"))) / 1000
    results: dict[str, dict[str, float]] = {}
    for name, proc in procs.items():
        out, err = proc.communicate("end\n", timeout=60)
        if proc.returncode != 0:
            tail = (err.strip().splitlines() or ["?"])[-1]
            print(f"  {name} {workload}: failed: {tail}", file=sys.stderr)
            continue
        results[name] = json.loads(out.strip().splitlines()[-1])
    return results


# (ours, peer) pairs whose ratio the table shows, when both ran: each peer on its own
# interpreter, and ours on PyPy against the CPython peers (the "aim" row).
RATIOS = [
    ("puregrpc_etcd (CPython)", "aetcd (CPython)"),
    ("puregrpc_etcd (CPython)", "grpclib (CPython)"),
    ("puregrpc_etcd (PyPy)", "grpclib (PyPy)"),
    ("puregrpc_etcd (PyPy)", "aetcd (CPython)"),
]


def _short(name: str) -> str:
    client, interpreter = name.split(" (")
    return f"{'ours' if client == 'puregrpc_etcd' else client} {interpreter.rstrip(')')}"


def table(found: list[Contender], workload_names: list[str]) -> str:
    """Medians per contender, then ours/peer ratios (above 1 means we are better)."""
    names = [c.name for c in found]
    pairs = [(a, b) for a, b in RATIOS if a in names and b in names]
    header = ["workload", "unit", *(_short(n) for n in names)]
    header += [f"{_short(a)} vs {_short(b)}" for a, b in pairs]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for workload in workload_names:
        unit, higher_better, _ = w.WORKLOADS[workload]
        medians: dict[str, float | None] = {}
        for c in found:
            values = c.results.get(workload)
            medians[c.name] = statistics.median(values) if values else None
        cells = [workload, unit]
        for name in names:
            m = medians[name]
            cells.append("—" if m is None else (f"{m:,.0f}" if m >= 100 else f"{m:,.2f}"))
        for ours_name, peer_name in pairs:
            ours_m, peer_m = medians[ours_name], medians[peer_name]
            if not ours_m or not peer_m:
                cells.append("—")
            else:
                ratio = ours_m / peer_m if higher_better else peer_m / ours_m
                cells.append(f"{ratio:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_table(found: list[Contender], workload_names: list[str]) -> str:
    """Median client CPU per operation (µs) of the get/put workloads."""
    rows = [n for n in workload_names if n.startswith(("get_", "put_"))]
    header = ["client CPU per op (µs)", *(_short(c.name) for c in found)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for workload in rows:
        cells = [workload]
        for c in found:
            runs = [r["cpu_us"] for r in c.extra.get(workload) or [] if "cpu_us" in r]
            cells.append(f"{statistics.median(runs):.0f}" if runs else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spread(found: list[Contender], workload_names: list[str]) -> str:
    """How noisy the rounds were: (max - min) / median of each contender's runs, worst case."""
    worst = 0.0
    where = ""
    for c in found:
        for workload in workload_names:
            values = c.results.get(workload) or []
            if len(values) > 1:
                noise = (max(values) - min(values)) / statistics.median(values)
                if noise > worst:
                    worst, where = noise, f"{c.name} {workload}"
    return f"largest spread between rounds: {worst:.0%} ({where})" if where else ""


def profile(args: argparse.Namespace, endpoint: str, first: int) -> None:
    """Run one workload of ours under pyinstrument: an HTML profile, and the text tree."""
    out = f"bench-{args.profile}.pyisession"
    worker = ["-m", "bench.worker_ours", args.profile, endpoint, str(args.seconds), str(first)]
    if args.warmup is not None:
        worker.append(str(args.warmup))
    subprocess.run(
        [args.python, "-m", "pyinstrument", "-r", "pyisession", "-o", out, *worker],
        cwd=ROOT,
        check=True,
    )
    for renderer, suffix in (("html", ".html"), ("text", ".txt")):
        # The text tree, without colour codes, is for reading in a terminal or a diff.
        render = ["-m", "pyinstrument", f"--load={out}", "-r", renderer, "-o", out + suffix]
        subprocess.run([args.python, *render], cwd=ROOT, check=True)
    with open(os.path.join(ROOT, out + ".txt")) as text:
        print(text.read())
    print(f"profile written to {out}.html and {out}.txt")


def record(
    c: Contender, workload: str, result: dict[str, float] | None, round_index: int, took: float
) -> None:
    if result is not None:
        c.results.setdefault(workload, []).append(result["value"])
        c.extra.setdefault(workload, []).append(result)
    print(
        f"  round {round_index + 1} {workload:15} {c.name:26} "
        f"{result and result['value']:>12} ({took:.1f} s)",
        file=sys.stderr,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("workloads", nargs="*", help=f"default: all of {', '.join(w.DEFAULT)}")
    parser.add_argument("--main", action="store_true", help=f"only {', '.join(w.MAIN)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of a timed run")
    parser.add_argument(
        "--warmup",
        type=float,
        help="seconds of each workload run before measuring (default 0.5 on CPython, 12 on PyPy)",
    )
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--pypy", default=os.path.join(ROOT, ".venv-pypy", "bin", "python"))
    parser.add_argument("--ours-only", action="store_true")
    parser.add_argument("--endpoint", help="use this etcd instead of starting one")
    parser.add_argument(
        "--profile",
        metavar="WORKLOAD",
        help="profile our client on one workload (pyinstrument: HTML file and text summary)",
    )
    args = parser.parse_args()
    names = w.MAIN if args.main else (args.workloads or w.DEFAULT)
    unknown = [n for n in names if n not in w.WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads: {', '.join(unknown)}")

    from puregrpc_etcd.testing import EtcdServer

    server = None
    if args.endpoint:
        endpoint = args.endpoint
    else:
        server = EtcdServer(args=["--quota-backend-bytes", str(8 * 1024**3)]).start()
        endpoint = server.endpoint
    try:
        first = prepare(endpoint, args.python)
        if args.profile:
            profile(args, endpoint, first)
            return
        found = contenders(args)
        print(
            f"etcd at {endpoint}; contenders: {', '.join(c.name for c in found)}", file=sys.stderr
        )
        for round_index in range(args.rounds):
            for workload in names:
                supporting = [c for c in found if c.supports(workload)]
                if workload in w.PAIRED:
                    started = time.perf_counter()
                    paired = run_paired(
                        supporting,
                        workload,
                        endpoint,
                        seconds=args.seconds,
                        first=first,
                        warmup=args.warmup,
                    )
                    took = time.perf_counter() - started
                    for c in supporting:
                        record(c, workload, paired.get(c.name), round_index, took)
                    continue
                for c in supporting:
                    started = time.perf_counter()
                    result = run_one(
                        c, workload, endpoint, seconds=args.seconds, first=first, warmup=args.warmup
                    )
                    record(c, workload, result, round_index, time.perf_counter() - started)
        print(table(found, names))
        print(f"\n{spread(found, names)}\n")
        print(cpu_table(found, names))
        print()
        for c in found:
            runs = c.extra.get("prefix_10k") or []
            if runs and "faults_per_call" in runs[0]:
                faults = statistics.median(r["faults_per_call"] for r in runs)
                print(f"- {c.name} prefix_10k: {faults:,.0f} page faults per call")
            for workload in ("get_seq", "put_seq"):
                runs = c.extra.get(workload) or []
                if runs and "p50_ms" in runs[0]:
                    p50 = statistics.median(r["p50_ms"] for r in runs)
                    p99 = statistics.median(r["p99_ms"] for r in runs)
                    print(f"- {c.name} {workload}: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    main()
