"""The deadlines of a connection's unary calls, in one heap, so that a call with a timeout
needs no cancel scope of its own (entering and leaving one cost a quarter of a unary call).
Pure bookkeeping: the connection's task sleeps until ``next`` and ends what ``expired`` gives."""

from __future__ import annotations

import heapq
import itertools
import math
from typing import List, Tuple

from .call_state import CallState
from .status import RpcError, StatusCode

__all__ = ["DeadlineQueue", "deadline_error"]

# Calls leave the heap only when their deadline passes; finished ones are pruned once they
# outnumber the live ones, so the heap stays within about twice the calls in flight.
_PRUNE_SLACK = 64


def deadline_error(timeout: float | None) -> RpcError:
    """What a call whose ``timeout`` passed ends with."""
    return RpcError(StatusCode.DEADLINE_EXCEEDED, f"deadline exceeded after {timeout:g} s")


class DeadlineQueue:
    """(deadline, call, timeout) entries, earliest first; calls already ended are skipped."""

    __slots__ = ("_heap", "_order")

    def __init__(self) -> None:
        self._heap: List[Tuple[float, int, CallState, float]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def next(self) -> float:
        """The earliest deadline held (math.inf for none)."""
        heap = self._heap
        return heap[0][0] if heap else math.inf

    def add(self, call: CallState, deadline: float, timeout: float, live_calls: int) -> bool:
        """Hold ``call`` until ``deadline``; True if that is now the earliest deadline."""
        heap = self._heap
        if len(heap) > 2 * live_calls + _PRUNE_SLACK:
            heap[:] = [entry for entry in heap if entry[2].code is None]
            heapq.heapify(heap)
        earliest = not heap or deadline < heap[0][0]
        heapq.heappush(heap, (deadline, next(self._order), call, timeout))
        return earliest

    def expired(self, now: float) -> List[Tuple[CallState, float]]:
        """Remove and return the (call, timeout) of every unfinished call due by ``now``."""
        heap = self._heap
        due = []
        while heap and heap[0][0] <= now:
            _, _, call, timeout = heapq.heappop(heap)
            if call.code is None:
                due.append((call, timeout))
        return due
