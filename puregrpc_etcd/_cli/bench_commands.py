"""``benchmark``: etcd's ``tools/benchmark``, its subcommands, flags, defaults and report.

``--conns`` is the number of connections and ``--clients`` the number of concurrent request
streams sharing them, as in the Go tool; ``--procs`` (ours) spreads the streams over worker
processes so that one Python core does not cap the load. The report goes to stdout, a progress
bar to stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any, Callable

from puregrpc_etcd._bench import watching
from puregrpc_etcd._bench.keys import random_bytes, varint_size
from puregrpc_etcd._bench.progress import Progress
from puregrpc_etcd._cli.args import (
    EXIT_ERROR,
    UsageError,
    add_global_flags,
    arg_bytes,
    argument_type,
    duration,
)
from puregrpc_etcd._cli.formats import go_duration, human_bytes

if TYPE_CHECKING:
    import trio

    from puregrpc_etcd._bench.engine import Outcome, connect_with, default_procs, run_plan
    from puregrpc_etcd._bench.workloads import Plan
    from puregrpc_etcd._cli.args import CommandTree
    from puregrpc_etcd._cli.session import Context, Settings
else:  # imported on first use: not for --help
    from puregrpc_etcd._cli import OnFirstUse, trio

    connect_with = OnFirstUse("puregrpc_etcd._bench.engine", "connect_with")
    default_procs = OnFirstUse("puregrpc_etcd._bench.engine", "default_procs")
    run_plan = OnFirstUse("puregrpc_etcd._bench.engine", "run_plan")
    Plan = OnFirstUse("puregrpc_etcd._bench.workloads", "Plan")

GROUP = "benchmark"


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""
    return argument_type(
        lambda text: int(text, 10),
        lambda value: value >= minimum,
        "invalid integer {text!r}",
        f"must be at least {minimum}, not {{value}}",
    )


#: A finite number of at least 0 (a rate; 0 means no limit).
rate = argument_type(
    float,
    lambda value: 0 <= value < float("inf"),
    "invalid number {text!r}",
    "must be a finite number >= 0, not {text!r}",
)


def add_bench_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The benchmark's persistent flags (on the group and, "not given" there, on each
    subcommand, so that they may come before or after it)."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("benchmark options")
    group.add_argument("--conns", type=count(1), default=default(1), help="gRPC connections (1)")
    group.add_argument(
        "--clients", type=count(1), default=default(1), help="concurrent gRPC clients (1)"
    )
    group.add_argument(
        "--precise", action="store_true", default=default(False), help="full float precision"
    )
    group.add_argument(
        "--sample", action="store_true", default=default(False), help="per-second samples"
    )
    group.add_argument(
        "--target-leader",
        action="store_true",
        default=default(False),
        help="send every request to the leader's endpoint",
    )
    group.add_argument(
        "--procs",
        type=count(1),
        default=default(None),
        help="worker processes (ours; default: the CPU count, at most --clients)",
    )


def register(tree: CommandTree) -> None:
    tree.group(GROUP, help="A low-level benchmark tool for etcd3 (etcd's tools/benchmark)")
    group_parser = tree._root_commands.choices[GROUP]  # the group's own parser
    add_global_flags(group_parser, suppress=True)
    add_bench_flags(group_parser, suppress=False)

    def command(name: str, help: str, handler: Any) -> argparse.ArgumentParser:
        parser = tree.command(name, help, handler, group=GROUP)
        add_bench_flags(parser, suppress=True)
        return parser

    def sizes(parser: argparse.ArgumentParser, key: int = 8, val: int = 8) -> None:
        parser.add_argument("--key-size", type=count(1), default=key, help=f"key size ({key})")
        parser.add_argument("--val-size", type=count(0), default=val, help=f"value size ({val})")

    def load(parser: argparse.ArgumentParser, what: str) -> None:
        parser.add_argument(
            "--rate", type=rate, default=0.0, help=f"maximum {what} per second (0 is no limit)"
        )
        parser.add_argument(
            "--total", type=count(1), default=10000, help=f"total number of {what} (10000)"
        )

    put = command("put", "Benchmark put", put_command)
    sizes(put)
    load(put, "puts")
    put.add_argument("--key-space-size", type=count(1), default=1, help="maximum possible keys")
    put.add_argument("--sequential-keys", action="store_true", help="use sequential keys")
    put.add_argument("--prefix", type=arg_bytes, default=b"", help="prefix for keys")
    put.add_argument("--compact-interval", type=duration, default=None, help="compact every")
    put.add_argument(
        "--compact-index-delta", type=count(0), default=1000, help="revisions kept (1000)"
    )
    put.add_argument("--check-hashkv", action="store_true", help="print the HashKV after")

    rng = command("range", "Benchmark range", range_command)
    rng.add_argument("key", metavar="KEY", type=arg_bytes)
    rng.add_argument("end", metavar="END", type=arg_bytes, nargs="?", default=b"")
    load(rng, "range requests")
    rng.add_argument("--consistency", default="l", help="linearizable (l) or serializable (s)")
    rng.add_argument("--limit", type=count(0), default=0, help="maximum keys per range (0)")
    rng.add_argument("--count-only", action="store_true", help="only return the count")
    rng.add_argument("--keys-only", action="store_true", help="only return the keys")

    txn_put = command("txn-put", "Benchmark txn-put", txn_put_command)
    sizes(txn_put)
    load(txn_put, "txns")
    txn_put.add_argument("--txn-ops", type=count(1), default=1, help="puts per txn (1)")
    txn_put.add_argument("--key-space-size", type=count(1), default=1, help="maximum keys")

    mixed = command(
        "txn-mixed", "Benchmark a mixed load of txn-put & txn-range.", txn_mixed_command
    )
    sizes(mixed)
    load(mixed, "txns")
    mixed.add_argument("--end-key", default="", help="read range end (as Go, overridden)")
    mixed.add_argument("--limit", type=count(0), default=1000, help="read range limit (1000)")
    mixed.add_argument("--key-space-size", type=count(1), default=1, help="maximum keys")
    mixed.add_argument("--consistency", default="l", help="linearizable (l) or serializable (s)")
    mixed.add_argument("--rw-ratio", type=rate, default=1.0, help="read/write ops ratio (1)")

    lease = command("lease-keepalive", "Benchmark lease keepalive", lease_keepalive_command)
    lease.add_argument("--total", type=count(1), default=10000, help="keepalive requests")

    watching.register(command, count, rate)


# --- running ------------------------------------------------------------------------------


async def bench_settings(ctx: Context, args: argparse.Namespace) -> Settings:
    """The connection settings, the password asked once, and with ``--target-leader`` the
    leader's client URLs alone."""
    ctx._password()
    settings = ctx.settings
    if getattr(args, "target_leader", False):
        settings.endpoints = await _leader_endpoints(settings)
    return settings


async def _leader_endpoints(settings: Settings) -> list[str]:
    """As the Go tool finds them: the leader a member reports, then its client URLs from the
    member list."""
    timeout = settings.command_timeout
    async with connect_with(settings) as client:
        leader = (await client.maintenance.status(timeout=timeout)).leader
        for member in await client.cluster.members(timeout=timeout):
            if member.id == leader and member.client_urls:
                return list(member.client_urls)
    raise UsageError("failed to find a leader endpoint", EXIT_ERROR)


async def execute(ctx: Context, args: argparse.Namespace, plan: Plan) -> Outcome:
    """Run ``plan`` with a progress bar; Ctrl-C ends it early with what completed."""
    procs = args.procs if args.procs else default_procs()
    progress = Progress(plan.total)
    try:
        return await run_plan(plan, procs, progress)
    finally:
        progress.finish()


async def _plan(ctx: Context, args: argparse.Namespace, workload: str, **params: Any) -> Plan:
    return Plan(
        workload,
        await bench_settings(ctx, args),
        conns=args.conns,
        clients=args.clients,
        total=args.total,
        rate=getattr(args, "rate", 0.0),
        timeout=ctx.command_timeout,
        params=params,
    )


def status(outcome: Outcome) -> int:
    """0, or 1 when not one request succeeded (the report shows why): a script must not take
    a run that measured nothing for a benchmark."""
    succeeded = any(len(report.latencies) for report in outcome.reports)
    failed = any(report.errors for report in outcome.reports)
    return EXIT_ERROR if failed and not succeeded else 0


def render(ctx: Context, args: argparse.Namespace, outcome: Outcome, index: int = 0) -> str:
    return outcome.reports[index].render(outcome.elapsed, precise=args.precise, sample=args.sample)


def _writes(args: argparse.Namespace) -> dict[str, Any]:
    """The key and value settings of the commands that write (checked before any I/O)."""
    need = varint_size(args.key_space_size - 1)
    if args.key_size < need:
        raise UsageError(
            f"--key-size {args.key_size} cannot hold {args.key_space_size} keys "
            f"(needs at least {need} bytes)"
        )
    return {
        "key_size": args.key_size,
        "key_space_size": args.key_space_size,
        "value": random_bytes(args.val_size),
    }


def _reads(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of the commands that read (checked, then announced as etcd's benchmark
    does, before any I/O)."""
    if args.consistency not in ("l", "s"):
        raise UsageError(f"--consistency must be l or s, not {args.consistency!r}")
    kind = "linearizable" if args.consistency == "l" else "serializable"
    print(f"bench with {kind} range", flush=True)
    return {"limit": args.limit, "consistency": args.consistency}


async def _run_one(ctx: Context, args: argparse.Namespace, plan: Plan, end: str = "\n") -> int:
    """Run a plan of one workload and print its report."""
    outcome = await execute(ctx, args, plan)
    print(render(ctx, args, outcome), end=end, flush=True)
    return status(outcome)


async def put_command(ctx: Context, args: argparse.Namespace) -> int:
    writes = _writes(args)
    plan = await _plan(
        ctx, args, "put", sequential_keys=args.sequential_keys, prefix=args.prefix, **writes
    )
    async with trio.open_nursery() as nursery:
        if args.compact_interval:
            nursery.start_soon(_compact_every, plan.settings, args)
        outcome = await execute(ctx, args, plan)
        print(render(ctx, args, outcome), flush=True)
        nursery.cancel_scope.cancel()
    if args.check_hashkv and not outcome.stopped:
        await _hashkv(plan.settings)
    return status(outcome)


async def _compact_every(settings: Settings, args: argparse.Namespace) -> None:
    async with connect_with(settings) as client:
        while True:
            await trio.sleep(args.compact_interval)
            revision = (await client.get("foo", timeout=5)).header.revision
            await client.compact(max(0, revision - args.compact_index_delta), timeout=5)


async def _hashkv(settings: Settings) -> None:
    host = settings.endpoints[0].strip()
    async with connect_with(settings) as client:
        began = time.perf_counter()
        hashed = await client.maintenance.hash_kv(0, host, timeout=settings.command_timeout)
        status = await client.maintenance.status(host, timeout=settings.command_timeout)
        took = time.perf_counter() - began
    print(
        "HashKV Summary:\n"
        f"\tHashKV: {hashed.hash}\n"
        f"\tEndpoint: {host}\n"
        f"\tTime taken to get hashkv: {go_duration(took)}\n"
        f"\tDB size: {human_bytes(status.db_size)}",
        flush=True,
    )


async def range_command(ctx: Context, args: argparse.Namespace) -> int:
    if args.count_only and args.keys_only:
        raise UsageError("`--keys-only` and `--count-only` cannot be set at the same time")
    reads = _reads(args)
    plan = await _plan(
        ctx,
        args,
        "range",
        key=args.key,
        end=args.end,
        keys_only=args.keys_only,
        count_only=args.count_only,
        **reads,
    )
    return await _run_one(ctx, args, plan, end="")


async def txn_put_command(ctx: Context, args: argparse.Namespace) -> int:
    writes = _writes(args)
    if args.txn_ops > args.key_space_size:
        raise UsageError(
            "expected --txn-ops no larger than --key-space-size, "
            f"got txn-ops({args.txn_ops}) key-space-size({args.key_space_size})"
        )
    plan = await _plan(ctx, args, "txn-put", txn_ops=args.txn_ops, **writes)
    return await _run_one(ctx, args, plan)


async def txn_mixed_command(ctx: Context, args: argparse.Namespace) -> int:
    writes = _writes(args)
    plan = await _plan(ctx, args, "txn-mixed", rw_ratio=args.rw_ratio, **_reads(args), **writes)
    outcome = await execute(ctx, args, plan)
    reads, written = outcome.reports
    print(f"Total Read Ops: {reads.count}\nDetails:", end="")
    print(render(ctx, args, outcome, 0))
    print(f"Total Write Ops: {written.count}\nDetails:", end="")
    print(render(ctx, args, outcome, 1), flush=True)
    return status(outcome)


async def lease_keepalive_command(ctx: Context, args: argparse.Namespace) -> int:
    plan = await _plan(ctx, args, "lease-keepalive")
    return await _run_one(ctx, args, plan, end="")
