"""Faults of a real etcd for the tests of ``tests/faults``: ``stopped`` (a hung member, SIGSTOP)
and ``outage`` (a member down, then started again on the same data dir and ports)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

from puregrpc_etcd.testing import EtcdServer

__all__ = ["outage", "stopped", "take_down"]


@contextmanager
def stopped(member: EtcdServer) -> Iterator[None]:
    """The member frozen (SIGSTOP): its kernel still accepts TCP, nothing answers."""
    pid = member.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        # The signal takes effect asynchronously: a call sent at once could still be served.
        for _attempt in range(1000):
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "T":
                    break
            time.sleep(0.001)
        else:
            raise AssertionError(f"etcd (pid {pid}) did not stop")
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def take_down(member: EtcdServer, how: str = "kill") -> None:
    """Stop the member by its pid and reap it, so that its port refuses connections:
    ``"kill"`` (SIGKILL, a crash) or ``"stop"`` (SIGTERM: etcd sends GOAWAY and then waits for
    open streams, a watch or a lease keepalive, to end, up to its request timeout of 7 s, before
    it closes them)."""
    if how == "kill":
        member.kill()
    elif how == "stop":
        member.stop()
    else:
        raise ValueError(f"how must be 'kill' or 'stop', not {how!r}")


@contextmanager
def outage(member: EtcdServer, how: str = "kill") -> Iterator[None]:
    """The member down for the block (``take_down``), then started again on the same data dir
    and ports, and waited for until it serves (bounded by its ``startup_timeout``)."""
    take_down(member, how)
    try:
        yield
    finally:
        member.restart()
