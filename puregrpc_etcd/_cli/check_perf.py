"""``check perf``: etcdctl's performance check, its load models, output and exit status.

It writes 256-byte keys with 1 KiB values under ``--prefix`` at the model's rate from the
model's number of clients (one connection each) for 60 s (``--duration``, ours, for shorter
runs), then deletes that prefix and judges throughput, slowest request and deviation as
etcdctl does. A prefix that already holds keys is refused: the check deletes only its own.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, NamedTuple

from puregrpc_etcd._bench.progress import Progress
from puregrpc_etcd._cli.args import (
    EXIT_BAD_FEATURE,
    EXIT_ERROR,
    EXIT_INVALID_INPUT,
    UsageError,
    arg_bytes,
    duration,
)
from puregrpc_etcd._cli.bench_commands import bench_settings, count
from puregrpc_etcd._cli.check_datascale import compact_saying, defragment_saying
from puregrpc_etcd.errors import EtcdError

if TYPE_CHECKING:
    import trio

    from puregrpc_etcd._bench.engine import (
        Outcome,
        connect_with,
        default_procs,
        error_line,
        run_plan,
    )
    from puregrpc_etcd._bench.workloads import Plan
    from puregrpc_etcd._cli.args import CommandTree
    from puregrpc_etcd._cli.session import Context, Settings
else:  # imported on first use: not for --help
    from puregrpc_etcd._cli import OnFirstUse, trio

    connect_with = OnFirstUse("puregrpc_etcd._bench.engine", "connect_with")
    default_procs = OnFirstUse("puregrpc_etcd._bench.engine", "default_procs")
    error_line = OnFirstUse("puregrpc_etcd._bench.engine", "error_line")
    run_plan = OnFirstUse("puregrpc_etcd._bench.engine", "run_plan")
    Plan = OnFirstUse("puregrpc_etcd._bench.workloads", "Plan")


class Model(NamedTuple):
    limit: int  # writes per second
    clients: int
    duration: int  # seconds


MODELS = {
    "s": Model(150, 50, 60),
    "m": Model(1000, 200, 60),
    "l": Model(8000, 500, 60),
    "xl": Model(15000, 1000, 60),
}
ALIASES = {"small": "s", "medium": "m", "large": "l", "xLarge": "xl"} | {m: m for m in MODELS}

_CLEANUP_TIMEOUT = 30.0


def register(tree: CommandTree) -> None:
    if "check" not in tree.command_names:
        tree.group("check", help="commands for checking properties of the etcd cluster")
    perf = tree.command("perf", "Check the performance of the etcd cluster", perf_command,
                        group="check")  # fmt: skip
    perf.add_argument(
        "--load",
        default="s",
        help="the workload model: s(small), m(medium), l(large), xl(xLarge)",
    )
    perf.add_argument(
        "--prefix",
        type=arg_bytes,
        default=b"/etcdctl-check-perf/",
        help="the prefix for writing the check's keys (/etcdctl-check-perf/)",
    )
    perf.add_argument("--auto-compact", action="store_true", help="compact after the test")
    perf.add_argument("--auto-defrag", action="store_true", help="defragment after the test")
    perf.add_argument(
        "--duration", type=duration, default=None, help="run time (ours; the model's 60s)"
    )
    perf.add_argument(
        "--procs", type=count(1), default=None, help="worker processes (ours; the CPU count)"
    )


async def perf_command(ctx: Context, args: argparse.Namespace) -> int:
    model_name = ALIASES.get(args.load)
    if model_name is None:
        raise UsageError(f"unknown load option {args.load}", EXIT_BAD_FEATURE)
    model = MODELS[model_name]
    prefix: bytes = args.prefix
    if not prefix:
        raise UsageError("--prefix must not be empty: the check deletes its prefix afterwards")
    settings = await bench_settings(ctx, args)
    async with connect_with(settings) as client:
        existing = await client.get(prefix, prefix=True, limit=1, timeout=ctx.command_timeout)
    if existing.kvs:
        text = prefix.decode("utf-8", "replace")
        raise UsageError(
            f"prefix {json.dumps(text)} has keys. Delete with 'etcdctl del --prefix {text}' first",
            EXIT_INVALID_INPUT,
        )
    plan = Plan(
        "check-perf",
        settings,
        conns=model.clients,
        clients=model.clients,
        total=None,
        rate=model.limit,
        duration=args.duration or model.duration,
        timeout=ctx.command_timeout,
        params={"prefix": prefix},
    )
    progress = Progress(None)
    outcome: Outcome | None = None
    try:
        outcome = await run_plan(plan, args.procs or default_procs(), progress)
    finally:
        progress.finish()
        # Also after Ctrl-C, as etcdctl's interrupt handler does: the keys are the check's own.
        with trio.CancelScope(shield=True):
            await _cleanup(settings, prefix, args.auto_compact and outcome is not None)
    assert outcome is not None
    if outcome.stopped:
        return EXIT_ERROR
    if args.auto_defrag:
        await _defrag_all(settings)
    return verdict(outcome, model)


async def _cleanup(settings: Settings, prefix: bytes, compact: bool) -> None:
    try:
        with trio.fail_after(_CLEANUP_TIMEOUT):
            async with connect_with(settings) as client:
                deleted = await client.delete(prefix, prefix=True)
                if compact:
                    revision = deleted.header.revision
                    await compact_saying(client, revision, _say, _CLEANUP_TIMEOUT)
    except (EtcdError, OSError, trio.TooSlowError) as exc:
        print(f"FAIL: Cleanup failed during key deletion: ERROR({error_line(exc)})", flush=True)


async def _defrag_all(settings: Settings) -> None:
    async with connect_with(settings) as client:
        await defragment_saying(client, settings.endpoints, _say, _CLEANUP_TIMEOUT)


def _say(line: str) -> None:
    print(line, flush=True)


def verdict(outcome: Outcome, model: Model) -> int:
    """etcdctl's PASS/FAIL lines; the exit status (1 on any failure)."""
    stats = outcome.reports[0].stats(outcome.elapsed)
    ok = True
    if stats.errors:
        print("FAIL: too many errors")
        for error, number in stats.errors.items():
            print(f"FAIL: ERROR({error}) -> {number}")
        ok = False
    writes = int(stats.rps) + 1
    if stats.rps / model.limit <= 0.9:
        print(f"FAIL: Throughput too low: {writes} writes/s")
        ok = False
    else:
        print(f"PASS: Throughput is {writes} writes/s")
    if stats.slowest > 0.5:
        print(f"Slowest request took too long: {stats.slowest:f}s")
        ok = False
    else:
        print(f"PASS: Slowest request took {stats.slowest:f}s")
    if stats.stddev > 0.1:
        print(f"Stddev too high: {stats.stddev:f}s")
        ok = False
    else:
        print(f"PASS: Stddev is {stats.stddev:f}s")
    print("PASS" if ok else "FAIL", flush=True)
    return 0 if ok else EXIT_ERROR
