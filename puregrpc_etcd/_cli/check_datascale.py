"""``check datascale``: how much memory etcd needs to hold a load of keys, as etcdctl's.

It refuses a prefix that already has keys, reads the server's resident memory from its
``/metrics`` page (``process_resident_memory_bytes``, on the first endpoint), writes the load's
key-value pairs (512-byte keys under the prefix, 512-byte values) from as many concurrent
writers as etcdctl has clients, reads the memory again, deletes what it wrote (then compacts
and defragments if asked) and prints the difference. etcdctl opens one connection per client;
the writers here share the client's one HTTP/2 connection.

``--limit N`` is ours: N pairs instead of the load's count, for a quick check.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from typing import TYPE_CHECKING, Callable, Sequence

from puregrpc_etcd._bench.keys import varint
from puregrpc_etcd._cli.admin_commands import ProgressBar
from puregrpc_etcd._cli.args import EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT, UsageError
from puregrpc_etcd.errors import EtcdError

if TYPE_CHECKING:
    import ssl

    import trio

    from puregrpc_etcd._cli.args import CommandTree
    from puregrpc_etcd._cli.session import Context
    from puregrpc_etcd.client import Client
else:
    from puregrpc_etcd._cli import trio  # imported on first use: not for --help

# etcdctl's workloads: (key-value pairs, concurrent clients); each pair is 1024 bytes.
LOADS = {"s": (10_000, 50), "m": (100_000, 200), "l": (1_000_000, 500), "xl": (3_000_000, 1000)}
_LOAD_NAMES = {"small": "s", "medium": "m", "large": "l", "xLarge": "xl"}
KEY_SIZE = VALUE_SIZE = 512
DEFAULT_PREFIX = "/etcdctl-check-datascale/"
_MEMORY_METRIC = "process_resident_memory_bytes"
_SLOW_CALL = 30.0  # etcdctl's timeout for the compaction and each defragmentation


def datascale_key(prefix: bytes, rng: random.Random) -> bytes:
    """etcdctl's key: the prefix, then 512 bytes holding a random varint."""
    return prefix + varint(rng.getrandbits(63)).ljust(KEY_SIZE, b"\0")


def resident_memory(metrics: str) -> float | None:
    """``process_resident_memory_bytes`` from a Prometheus text page, as etcdctl reads it."""
    for line in metrics.split("\n"):
        if line.startswith(_MEMORY_METRIC):
            try:
                return float(line[len(_MEMORY_METRIC) :].strip())
            except ValueError:
                return None
    return None


async def _memory_bytes(ctx: Context, endpoint: str) -> float:
    """The server's resident memory, or 0 after printing why not (etcdctl's words)."""
    url = endpoint if endpoint.startswith(("http://", "https://")) else "http://" + endpoint
    url += "/metrics"
    context: ssl.SSLContext | None = None
    if url.startswith("https://"):
        context = ctx.settings.tls_context()

    def fetch() -> str:
        import urllib.request  # only here: it costs the command's --help a few ms

        with urllib.request.urlopen(url, timeout=ctx.command_timeout, context=context) as reply:
            return reply.read().decode("utf-8", "replace")  # type: ignore[no-any-return]

    try:
        page = await trio.to_thread.run_sync(fetch, abandon_on_cancel=True)
    except (OSError, ValueError) as exc:
        ctx.out.line(f"fetch error: {exc}")
        return 0.0
    value = resident_memory(page)
    if value is None:
        ctx.out.line(f"could not find: {_MEMORY_METRIC}")
        return 0.0
    return value


async def _write_load(client: Client, prefix: bytes, count: int, writers: int) -> dict[str, int]:
    """Put ``count`` pairs from ``writers`` concurrent tasks; the errors counted by message."""
    errors: dict[str, int] = {}
    value = b"\0" * VALUE_SIZE
    rng = random.Random()
    progress = ProgressBar(unit="keys")
    done = 0
    send, receive = trio.open_memory_channel[bytes](writers)

    async def produce() -> None:
        async with send:
            for _ in range(count):
                await send.send(datascale_key(prefix, rng))

    async def write() -> None:
        nonlocal done
        async for key in receive:
            try:
                await client.put(key, value)
            except EtcdError as exc:
                errors[str(exc)] = errors.get(str(exc), 0) + 1
            done += 1
            progress(done, count)

    async with receive, trio.open_nursery() as nursery:
        nursery.start_soon(produce)
        for _ in range(writers):
            nursery.start_soon(write)
    progress.finish()
    return errors


async def check_datascale_command(ctx: Context, args: argparse.Namespace) -> int:
    load = _LOAD_NAMES.get(args.load, args.load)
    if load not in LOADS:
        raise UsageError(f"unknown load option {args.load}", EXIT_BAD_FEATURE)
    count, writers = LOADS[load]
    if args.limit is not None:
        if args.limit < 1:
            raise UsageError("--limit must be at least 1")
        count = args.limit
    prefix = args.prefix.encode()
    async with ctx.connect() as client:
        if (await client.get(prefix, prefix=True, limit=1)).kvs:
            raise UsageError(
                f'prefix "{args.prefix}" has keys. Delete with '
                f"puregrpc-etcd del --prefix {args.prefix} first",
                EXIT_INVALID_INPUT,
            )
        endpoint = ctx.settings.endpoints[0]
        before = await _memory_bytes(ctx, endpoint)
        if not before:
            ctx.out.line(f"FAIL: Could not read {_MEMORY_METRIC} before the put operations.")
            return EXIT_ERROR
        ctx.out.line(
            f"Start data scale check for work load [{count} key-value pairs, "
            f"{KEY_SIZE + VALUE_SIZE} bytes per key-value, {writers} concurrent clients]."
        )
        sys.stdout.flush()
        errors = await _write_load(client, prefix, count, writers)
        after = await _memory_bytes(ctx, endpoint)
        if not after:
            ctx.out.line(f"FAIL: Could not read {_MEMORY_METRIC} after the put operations.")
            return EXIT_ERROR
        deleted = await client.delete(prefix, prefix=True)
        if args.auto_compact:
            await compact_saying(client, deleted.header.revision, ctx.out.line, _SLOW_CALL)
        if args.auto_defrag:
            await defragment_saying(client, ctx.settings.endpoints, ctx.out.line, _SLOW_CALL)
    if errors:
        ctx.out.line("FAIL: too many errors")
        for message, times in errors.items():
            ctx.out.line(f"FAIL: ERROR({message}) -> {times}")
        return EXIT_ERROR
    ctx.out.line(f"PASS: Approximate system memory used : {(after - before) / 2**20:.2f} MB.")
    return 0


def register(tree: CommandTree) -> None:
    """``check datascale``, in the ``check`` group that ``check perf`` shares."""
    tree.group("check", "Checks properties of the etcd cluster")
    datascale = tree.command(
        "datascale",
        "Check the memory usage of holding data for different workloads on a given server "
        "endpoint (the first of --endpoints).",
        check_datascale_command,
        group="check",
    )
    datascale.add_argument(
        "--load",
        default="s",
        help="The datascale check's workload model. Accepted workloads: s(small), m(medium), "
        "l(large), xl(xLarge)",
    )
    datascale.add_argument(
        "--prefix",
        default=DEFAULT_PREFIX,
        help="The prefix for writing the datascale check's keys.",
    )
    datascale.add_argument(
        "--auto-compact",
        action="store_true",
        help="Compact storage with last revision after test is finished.",
    )
    datascale.add_argument(
        "--auto-defrag", action="store_true", help="Defragment storage after test is finished."
    )
    datascale.add_argument(
        "--limit",
        type=int,
        default=None,
        help="ours: write this many key-value pairs instead of the load's count",
    )


async def compact_saying(
    client: Client, revision: int, say: Callable[[str], None], timeout: float
) -> None:
    """etcdctl's check commands' --auto-compact: physical compaction, with its two lines."""
    say(f"Compacting with revision {revision}")
    await client.compact(revision, physical=True, timeout=timeout)
    say(f"Compacted with revision {revision}")


async def defragment_saying(
    client: Client, endpoints: Sequence[str], say: Callable[[str], None], timeout: float
) -> None:
    """etcdctl's check commands' --auto-defrag: each member in turn, with its two lines (the
    endpoint quoted as Go's %q)."""
    for endpoint in endpoints:
        say(f"Defragmenting {json.dumps(endpoint)}")
        await client.maintenance.defragment(endpoint, timeout=timeout)
        say(f"Defragmented {json.dumps(endpoint)}")
