"""``snapshot save``/``status``, ``defrag``, ``alarm`` and ``move-leader``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Callable, TypeVar

from puregrpc_etcd._cli.args import EXIT_BAD_FEATURE, EXIT_ERROR, UsageError, hex_id
from puregrpc_etcd._cli.formats import header_json, human_bytes, omit_empty
from puregrpc_etcd._cli.replies import current_header
from puregrpc_etcd._cli.session import open_error_text
from puregrpc_etcd.errors import EtcdError

if TYPE_CHECKING:
    import trio

    from puregrpc_etcd._cli.args import CommandTree
    from puregrpc_etcd._cli.session import Context
    from puregrpc_etcd._snapshot_status import check_snapshot_file, read_snapshot_status
    from puregrpc_etcd.maintenance import Maintenance
else:
    from puregrpc_etcd._cli import OnFirstUse, trio  # imported on first use

    check_snapshot_file = OnFirstUse("puregrpc_etcd._snapshot_status", "check_snapshot_file")
    read_snapshot_status = OnFirstUse("puregrpc_etcd._snapshot_status", "read_snapshot_status")

_ALARM_TYPES = {"nospace": 1, "corrupt": 2}


class ProgressBar:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    width = 30

    def __init__(self, unit: str = "bytes") -> None:
        self.unit = unit
        self.enabled = sys.stderr.isatty()
        self.drawn = False

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if total:
            filled = min(self.width, done * self.width // total)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"\r[{bar}] {done * 100 // total:3d}% {done:,}/{total:,} {self.unit}"
        else:
            text = f"\r{done:,} {self.unit}"
        sys.stderr.write(text)
        sys.stderr.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


async def snapshot_save_command(ctx: Context, args: argparse.Namespace) -> int:
    progress = ProgressBar()
    try:
        async with ctx.connect() as client:
            await client.maintenance.snapshot(args.filename, progress=progress)
    finally:
        progress.finish()
    # The digest proved the transfer; this proves the file is a whole bbolt database.
    await _read_snapshot(check_snapshot_file, args.filename, "was saved but")
    ctx.out.line(f"Snapshot saved at {args.filename}")
    return 0


async def snapshot_status_command(ctx: Context, args: argparse.Namespace) -> int:
    """``etcdutl snapshot status``: hash, revision, keys and size of a snapshot file."""
    ctx.require_format("simple", "json", "table")
    status = await _read_snapshot(read_snapshot_status, args.filename, "is")
    if ctx.write_out == "json":
        ctx.out.json(
            {
                "hash": status.hash,
                "revision": status.revision,
                "totalKey": status.total_key,
                "totalSize": status.total_size,
            }
        )
        return 0
    row = [
        f"{status.hash:x}",
        str(status.revision),
        str(status.total_key),
        human_bytes(status.total_size),
    ]
    if ctx.write_out == "table":
        ctx.out.table(["hash", "revision", "total keys", "total size"], [row])
    else:
        ctx.out.line(", ".join(row))
    return 0


_Result = TypeVar("_Result")


async def _read_snapshot(read: Callable[[str], _Result], path: str, verb: str) -> _Result:
    """Run a (CPU-bound) reader of the snapshot file in a thread, Ctrl-C still heard; a file
    that is no snapshot is one error line and exit code 1, as etcdutl's."""
    from puregrpc_etcd._snapshot_status import CorruptDatabase

    try:
        return await trio.to_thread.run_sync(read, path, abandon_on_cancel=True)
    except CorruptDatabase as exc:
        raise UsageError(f"{path} {verb} not a valid snapshot: {exc}", EXIT_ERROR) from None
    except OSError as exc:
        raise UsageError(open_error_text(path, exc), EXIT_ERROR) from None


async def defrag_command(ctx: Context, args: argparse.Namespace) -> int:
    if args.data_dir:
        raise UsageError(
            "defrag --data-dir (a stopped member's files) is not supported: use "
            "'etcdutl defrag --data-dir'",
            EXIT_BAD_FEATURE,
        )
    async with ctx.connect() as client:
        maintenance = client.maintenance
        endpoints = list(ctx.settings.endpoints)
        if args.cluster:
            endpoints = [url for m in await client.cluster.members() for url in m.client_urls]
        failed = False
        for endpoint in endpoints:
            failed |= not await _defragment(ctx, maintenance, endpoint)
    return EXIT_ERROR if failed else 0


async def _defragment(ctx: Context, maintenance: Maintenance, endpoint: str) -> bool:
    """Defragment one member; as etcdctl, a failure is reported and the others still done."""
    try:
        await maintenance.defragment(endpoint, timeout=max(ctx.command_timeout, 30.0))
    except (EtcdError, OSError) as exc:
        print(f"Failed to defragment etcd member[{endpoint}] ({exc})", file=sys.stderr)
        return False
    ctx.out.line(f"Finished defragmenting etcd member[{endpoint}]")
    return True


async def alarm_command(ctx: Context, args: argparse.Namespace) -> int:
    ctx.require_format("simple", "json")
    async with ctx.connect() as client:
        if args.alarm_command == "disarm":
            alarms = await client.maintenance.disarm()
            # clientv3 builds the reply of "disarm all" itself from the answers: no header.
            header = None
        else:
            alarms = await client.maintenance.alarms()
            header = await current_header(client) if ctx.write_out == "json" else None
    if ctx.write_out == "json":
        # etcdserverpb.AlarmMember: the alarm type as its number (NOSPACE 1, CORRUPT 2).
        listed = [{"memberID": a.member_id, "alarm": _ALARM_TYPES[a.alarm]} for a in alarms]
        fields = [("header", header_json(header) if header else None), ("alarms", listed)]
        ctx.out.json(omit_empty(fields))
        return 0
    for alarm in alarms:
        ctx.out.line(f"memberID:{alarm.member_id} alarm:{alarm.alarm.upper()} ")
    return 0


async def move_leader_command(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.connect() as client:
        maintenance = client.maintenance
        before = await maintenance.status()
        await maintenance.move_leader(args.member_id)
    ctx.out.line(f"Leadership transferred from {before.leader:x} to {args.member_id:x}")
    return 0


def register(tree: CommandTree) -> None:
    tree.group("snapshot", "Manages etcd node snapshots")
    save = tree.command(
        "save", "Stores a snapshot of the member's store to a file", snapshot_save_command,
        group="snapshot",
    )  # fmt: skip
    save.add_argument("filename")
    status = tree.command(
        "status", "Gets backend snapshot status of a given file", snapshot_status_command,
        group="snapshot",
    )  # fmt: skip
    status.add_argument("filename")
    defrag = tree.command("defrag", "Defragments the storage of the members", defrag_command)
    defrag.add_argument("--cluster", action="store_true", help="every member of the cluster")
    defrag.add_argument(
        "--data-dir", default="", help="offline defrag of a data dir: not supported, use etcdutl"
    )
    tree.group("alarm", "Alarm related commands")
    tree.command("list", "Lists all alarms", alarm_command, group="alarm")
    tree.command("disarm", "Disarms all alarms", alarm_command, group="alarm")
    move = tree.command(
        "move-leader", "Transfers leadership to another member", move_leader_command
    )
    move.add_argument("member_id", type=hex_id, metavar="MEMBER_ID")
