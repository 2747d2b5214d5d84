"""Runs a ``Plan`` over one or several worker processes and merges their reports.

Each process takes an equal share of the ``--clients`` (concurrent request streams), of the
``--conns`` (connections, at least one per process), of the request numbers (process ``w`` of
``n`` sends ``w, w+n, w+2n, ...``) and of the ``--rate``. The processes connect first, then start
together; their latencies merge into one report per kind of request, timed from the common
start to the last process's end. With one process the share runs in the caller's trio run.

Ctrl-C (or the caller's cancellation) stops every process from issuing more requests; what
completed is still returned.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
import time
import warnings
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncContextManager, AsyncIterator, Callable

import trio

from puregrpc_etcd._bench.report import Report
from puregrpc_etcd._bench.workloads import Limiter, Plan, Workload
from puregrpc_etcd._exception_groups import unwrap_group
from puregrpc_etcd.errors import ConnectionFailedError, EtcdError
from puregrpc_etcd.grpc.status import StatusCode

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from puregrpc_etcd._cli.session import Settings
    from puregrpc_etcd.client import Client

__all__ = [
    "Outcome",
    "WorkerFailed",
    "connect_with",
    "default_procs",
    "open_clients",
    "run_plan",
]

# How long stopped workers get to hand their results in before they are terminated.
_COLLECT_TIMEOUT = 15.0
_POLL = 0.02


class WorkerFailed(EtcdError):
    """A worker process could not run its share (it could not connect, for one)."""


@dataclass
class Outcome:
    reports: list[Report]
    elapsed: float  # seconds from the common start to the last share's end
    stopped: bool = False  # ended early by Ctrl-C


def default_procs() -> int:
    return max(1, os.cpu_count() or 1)


def _split(amount: int, parts: int, index: int) -> int:
    return amount // parts + (1 if index < amount % parts else 0)


@dataclass
class _Share:
    index: int
    procs: int

    def of(self, plan: Plan) -> tuple[int, int]:
        """(clients, conns) of this share."""
        clients = _split(plan.clients, self.procs, self.index)
        conns = max(1, min(clients, _split(plan.conns, self.procs, self.index)))
        return clients, conns


async def run_share(
    plan: Plan,
    share: _Share,
    reports: list[Report],
    *,
    ready: Callable[[], Any],
    stop: Callable[[], bool],
    tick: Callable[[], None],
) -> tuple[float, float]:
    """Connect, prepare, ``await ready()`` (it returns once every share may start), then run;
    returns this share's (start, end) wall times."""
    settings = plan.settings
    clients_count, conns_count = share.of(plan)
    workload = Workload(plan, seed=int.from_bytes(os.urandom(8), "big") + share.index)
    async with open_clients(settings, conns_count) as conns:
        stream_clients = [conns[n % conns_count] for n in range(clients_count)]
        for n, client in enumerate(stream_clients):
            await workload.prepare(client, n)
        await ready()
        begin = time.time()
        deadline = math.inf if plan.duration is None else trio.current_time() + plan.duration
        if plan.total is None:
            indices: Any = iter(lambda: 0, 1)  # endless; the deadline or a stop ends it
        else:
            indices = iter(range(share.index, plan.total, share.procs))
        limiter = Limiter(plan.rate / share.procs if plan.rate else 0.0)

        async def stream(number: int, client: Client) -> None:
            for index in indices:
                if stop():
                    return
                if limiter.interval or plan.duration is not None:
                    start_at = limiter.slot(trio.current_time())
                    if start_at >= deadline:
                        return
                    await trio.sleep_until(start_at)
                which, call = workload.request(index, number)
                wall = time.time()
                began = time.perf_counter()
                try:
                    await call(client)
                except (EtcdError, OSError) as exc:
                    reports[which].add_error(error_line(exc))
                else:
                    reports[which].add(wall, time.perf_counter() - began)
                tick()

        try:
            async with trio.open_nursery() as nursery:
                for number, client in enumerate(stream_clients):
                    nursery.start_soon(stream, number, client)
        finally:
            end = time.time()
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await workload.cleanup(conns[0])
    return begin, end


@asynccontextmanager
async def open_clients(settings: Settings, count: int) -> AsyncIterator[list[Client]]:
    """``count`` connected clients, opened side by side in tasks of their own.

    Not nested in one another: a trio call looks up its deadline through every cancel scope
    around it, and 500 nested clients made that walk the largest cost of a request.
    """
    tls = settings.tls_context()
    clients: list[Client] = []
    connected = trio.Event()
    release = trio.Event()

    async def hold() -> None:
        async with connect_with(settings, tls) as client:
            await _warm_up(client, settings)
            clients.append(client)
            if len(clients) == count:
                connected.set()
            await release.wait()

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(hold)
        await connected.wait()
        try:
            yield clients
        finally:
            release.set()


async def _warm_up(client: Client, settings: Settings) -> None:
    """Open the connection before the clock starts (as Go's blocking dial does), so that no
    handshake is timed; an unreachable endpoint fails here, once, rather than every request.
    Any reply will do: a user without the permission for Status still connected."""
    try:
        await client.maintenance.status(timeout=settings.command_timeout)
    except ConnectionFailedError:
        raise
    except EtcdError:
        pass


def connect_with(settings: Settings, tls: Any = None) -> AsyncContextManager[Client]:
    """A client for the benchmark's settings (no per-call timeout: each request has its own)."""
    from puregrpc_etcd.client import connect

    return connect(
        settings.endpoints,
        username=settings.user or None,
        password=settings.password,
        tls=settings.tls_context() if tls is None else tls,
        connect_timeout=settings.dial_timeout,
    )


def error_line(exc: BaseException) -> str:
    from puregrpc_etcd._cli.session import error_text

    return error_text(exc)


# --- one process --------------------------------------------------------------------------


async def _run_here(plan: Plan, progress: Callable[[int], None]) -> Outcome:
    reports = [Report() for _ in plan.report_names]
    done = 0
    times: list[float] = []

    def tick() -> None:
        nonlocal done
        done += 1
        progress(done)

    async def ready() -> None:
        times.append(time.time())

    try:
        begin, end = await run_share(
            plan, _Share(0, 1), reports, ready=ready, stop=lambda: False, tick=tick
        )
    except BaseException as exc:
        # Ctrl-C cancels the run; a nursery may have wrapped the cancellation in a group.
        if not times or not isinstance(unwrap_group(exc), trio.Cancelled):
            raise
        return Outcome(reports, time.time() - times[0], stopped=True)
    return Outcome(reports, end - begin)


# --- several processes --------------------------------------------------------------------


def _worker_main(plan: Plan, index: int, procs: int, conn: Connection, shared: Any) -> None:
    """A worker process: run one share, send back ``("done", reports, begin, end)`` or
    ``("failed", message)``. Ctrl-C is the parent's to handle: it sets the stop flag."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One line per warning, as the command prints them, and from the first worker only: the
    # others would repeat it (a password sent in the clear, for one).
    warnings.showwarning = _show_warning if index == 0 else _ignore_warning
    counters, go, stop = shared
    reports = [Report() for _ in plan.report_names]

    def tick() -> None:
        counters[index] += 1

    async def ready() -> None:
        conn.send(("ready",))
        while not go.is_set():
            if stop.is_set():
                raise _Stopped
            await trio.sleep(0.005)

    stopping = [False]  # the shared event, read every 20 ms rather than locked per request

    async def watch_stop() -> None:
        while not stop.is_set():  # noqa: ASYNC110 - a process-shared event, polled
            await trio.sleep(_POLL)
        stopping[0] = True

    async def main() -> tuple[float, float]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_stop)
            times = await run_share(
                plan,
                _Share(index, procs),
                reports,
                ready=ready,
                stop=lambda: stopping[0],
                tick=tick,
            )
            nursery.cancel_scope.cancel()
        return times

    try:
        begin, end = trio.run(main)
    except _Stopped:
        conn.send(("done", reports, time.time(), time.time()))
    except BaseException as exc:  # every failure goes back as one line
        error = unwrap_group(exc)
        kind = "connection" if isinstance(error, ConnectionFailedError) else "error"
        if type(error).__name__ == "UsageError":
            kind = "usage"
        conn.send(("failed", error_line(error), kind))
    else:
        conn.send(("done", reports, begin, end))
    conn.close()


def _show_warning(message: Warning | str, *_: object, **__: object) -> None:
    print(f"Warning: {message}", file=sys.stderr)


def _ignore_warning(*_: object, **__: object) -> None:
    pass


class _Stopped(Exception):
    pass


async def _run_spawned(plan: Plan, procs: int, progress: Callable[[int], None]) -> Outcome:
    mp = multiprocessing.get_context("spawn")
    counters = mp.RawArray("q", procs)
    go, stop = mp.Event(), mp.Event()
    pipes = [mp.Pipe(duplex=False) for _ in range(procs)]
    workers = [
        mp.Process(
            target=_worker_main,
            args=(plan, index, procs, pipes[index][1], (counters, go, stop)),
            daemon=True,
        )
        for index in range(procs)
    ]
    for worker in workers:
        worker.start()
    for _, sender in pipes:
        sender.close()
    messages: dict[int, tuple[Any, ...]] = {}
    ready: set[int] = set()
    begins: list[float] = []
    stopped = False
    try:
        try:
            while len(messages) < procs:
                failed = _receive(pipes, messages, ready)
                if failed is not None:
                    raise _failure(*failed[1:])
                if len(ready) == procs and not go.is_set():
                    begins.append(time.time())
                    go.set()
                if go.is_set():
                    progress(sum(counters))
                await trio.sleep(_POLL)
        except trio.Cancelled:
            stopped = True
            stop.set()
            with trio.CancelScope(shield=True), trio.move_on_after(_COLLECT_TIMEOUT):
                while len(messages) < procs:
                    _receive(pipes, messages, ready)
                    await trio.sleep(_POLL)
            if not begins:
                raise
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=0.5 if stopped else 5)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)
    reports = [Report() for _ in plan.report_names]
    ends = []
    for message in messages.values():
        if message[0] == "done":
            for report, part in zip(reports, message[1]):
                report.merge(part)
            ends.append(message[3])
    begin = begins[0] if begins else time.time()
    return Outcome(reports, max(ends, default=time.time()) - begin, stopped=stopped)


def _receive(
    pipes: list[tuple[Connection, Connection]],
    messages: dict[int, tuple[Any, ...]],
    ready: set[int],
) -> tuple[Any, ...] | None:
    """Take what the workers sent; the first failure, if one came."""
    failed = None
    for index, (receiver, _) in enumerate(pipes):
        if index in messages or not receiver.poll():
            continue
        try:
            message = receiver.recv()
        except EOFError:
            message = ("failed", f"worker process {index} exited unexpectedly", "error")
        if message[0] == "ready":
            ready.add(index)
            continue
        messages[index] = message
        if message[0] == "failed" and failed is None:
            failed = message
    return failed


def _failure(text: str, kind: str) -> Exception:
    """A worker's failure as the error the command reports (and its exit status)."""
    if kind == "connection":
        return ConnectionFailedError(StatusCode.UNAVAILABLE, text)
    if kind == "usage":
        from puregrpc_etcd._cli.args import UsageError

        return UsageError(text)
    return WorkerFailed(text)


async def run_plan(plan: Plan, procs: int, progress: Callable[[int], None]) -> Outcome:
    """Run ``plan`` in ``procs`` processes (never more than there are streams)."""
    procs = max(1, min(procs, plan.clients))
    if procs == 1:
        return await _run_here(plan, progress)
    return await _run_spawned(plan, procs, progress)
