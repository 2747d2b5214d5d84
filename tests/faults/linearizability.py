"""A linearizability checker for histories of etcd KV operations on independent keys.

Each key is a register (a value, or absent) read and written by get, put, delete and
compare-and-set; the history is split per key (linearizability is local: the whole history is
linearizable iff each key's is) and each part is searched with Wing & Gong's algorithm and
porcupine's memoisation. Pure Python, no I/O; used by ``test_linearizability.py``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Literal, Optional

Kind = Literal["get", "put", "delete", "cas"]
Outcome = Literal["ok", "failed", "unknown"]
Value = Optional[bytes]  # None: the key does not exist

DEFAULT_MAX_STEPS = 5_000_000


@dataclass(frozen=True)
class Operation:
    """One call as a client saw it.

    ``outcome`` is "ok" (it completed and its results are recorded), "failed" (it definitely
    had no effect: the server never got it) or "unknown" (it may have taken effect, at any time
    after ``invoke``: a timeout, a connection lost after sending). ``complete`` is ignored for
    unknown ones (taken as infinity). For ok ones ``observed`` is the key's value just before
    the operation took effect: what a get read, a put's or delete's ``prev_kv``, what a cas
    compared against (its ``expected`` when it succeeded). ``value`` is what a put or a cas
    writes; a cas writes it iff the key's value equals ``expected`` (None: the key is absent).
    """

    key: str
    kind: Kind
    invoke: float
    complete: float
    outcome: Outcome = "ok"
    value: Value = None
    expected: Value = None
    observed: Value = None
    succeeded: Optional[bool] = None
    client: int = 0
    index: int = 0
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("get", "put", "delete", "cas"):
            raise ValueError(f"unknown kind {self.kind!r}")
        if self.outcome not in ("ok", "failed", "unknown"):
            raise ValueError(f"unknown outcome {self.outcome!r}")
        if self.kind in ("put", "cas") and self.value is None:
            raise ValueError(f"a {self.kind} needs the value it writes")
        if self.kind == "cas" and self.outcome == "ok" and self.succeeded is None:
            raise ValueError("an ok cas needs succeeded")
        if self.outcome == "ok" and self.complete < self.invoke:
            raise ValueError(f"operation completes before it is invoked: {self}")

    def describe(self) -> str:
        """One line, for failure reports."""
        what = {
            "get": "get()",
            "put": f"put({self.value!r})",
            "delete": "delete()",
            "cas": f"cas({self.expected!r} -> {self.value!r})",
        }[self.kind]
        if self.outcome == "ok":
            result = f"saw {self.observed!r}"
            if self.kind == "cas":
                result += ", succeeded" if self.succeeded else ", failed"
            end = f"{self.complete:.6f}"
        else:
            result = self.outcome
            end = "?" if self.outcome == "unknown" else f"{self.complete:.6f}"
        note = f" [{self.note}]" if self.note else ""
        return (
            f"#{self.index} client {self.client} key {self.key!r} [{self.invoke:.6f}, {end}] "
            f"{what}: {result}{note}"
        )


def step(state: Value, op: Operation) -> tuple[bool, Value]:
    """The register model: whether ``op`` may take effect in ``state``, and the state after."""
    if op.outcome == "ok" and state != op.observed:
        return False, state
    kind = op.kind
    if kind == "get":
        return True, state
    if kind == "put":
        return True, op.value
    if kind == "delete":
        return True, None
    hit = state == op.expected
    if op.outcome == "ok" and hit != op.succeeded:
        return False, state
    return True, (op.value if hit else state)


class BudgetExceededError(RuntimeError):
    """The search took more steps than allowed: neither proved nor refuted."""


@dataclass
class KeyResult:
    key: str
    linearizable: bool
    operations: int  # searched (after dropping failed ops and unknown gets, and pruning)
    pruned: int  # unknown writes whose value nobody saw (see ``prune``)
    steps: int
    # When not linearizable: the longest prefix that could be linearized, the state after it,
    # and the operations that could not follow it (those pending at that point).
    prefix: list[Operation] = field(default_factory=list)
    state: Value = None
    stuck: list[Operation] = field(default_factory=list)


@dataclass
class CheckResult:
    linearizable: bool
    keys: dict[str, KeyResult]

    @property
    def steps(self) -> int:
        return sum(r.steps for r in self.keys.values())

    def explain(self, history: list[Operation], context: int = 12) -> str:
        """What went wrong, with the part of the history around it."""
        lines = []
        for result in self.keys.values():
            if result.linearizable:
                continue
            lines.append(
                f"key {result.key!r}: not linearizable. The longest linearizable prefix has "
                f"{len(result.prefix)} of {result.operations} operations and leaves the key at "
                f"{result.state!r}; none of these can come next:"
            )
            lines += [f"  {op.describe()}" for op in result.stuck]
            lines.append("  the last operations of that prefix:")
            lines += [f"  {op.describe()}" for op in result.prefix[-context:]]
            if result.stuck:
                first = min(op.complete for op in result.stuck)
                around = [
                    op
                    for op in history
                    if op.key == result.key and op.invoke <= first and _end(op) >= first - 1.0
                ]
                lines.append("  every operation of the key running within 1 s before that:")
                lines += [f"  {op.describe()}" for op in around[-4 * context :]]
        return "\n".join(lines)


def _end(op: Operation) -> float:
    return math.inf if op.outcome == "unknown" else op.complete


def check(
    history: list[Operation], *, initial: Value = None, max_steps: int = DEFAULT_MAX_STEPS
) -> CheckResult:
    """Whether ``history`` is linearizable, key by key (every key starts at ``initial``).

    Raises ``BudgetExceededError`` if a key needs more than ``max_steps`` search steps.
    """
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for op in history:
        by_key[op.key].append(op)
    keys = {
        key: check_key(ops, initial=initial, max_steps=max_steps) for key, ops in by_key.items()
    }
    return CheckResult(all(r.linearizable for r in keys.values()), keys)


def prune(ops: list[Operation]) -> tuple[list[Operation], int]:
    """Drop what cannot change the answer: failed operations (they had no effect), unknown
    gets (no effect, nothing seen), and unknown writes of a value that no ok operation saw and
    no unknown cas expects.

    The last are exact, not a heuristic: every ok operation observes the value before it. If a
    linearization applies such a write W, everything after W up to the next write that does not
    depend on the state is an unknown operation that leaves W's value in place (an unknown cas
    expecting something else); moving those to the end and removing W gives a linearization
    without W. Without this an unseen unknown write could be placed in any subset of the gaps
    between the operations after it, which makes the search exponential.
    """
    kept = [
        op for op in ops if op.outcome == "ok" or (op.outcome == "unknown" and op.kind != "get")
    ]
    pruned = 0
    # Removing a write can leave another one unseen (an unknown put whose value only a pruned
    # unknown cas expected): repeat until nothing changes.
    while True:
        seen: set[Value] = set()
        for op in kept:
            if op.outcome == "ok":
                seen.add(op.observed)
            elif op.kind == "cas":
                # An ok cas that expects a value saw it when it succeeded (``observed``).
                seen.add(op.expected)
        unseen = [
            op
            for op in kept
            if op.outcome == "unknown" and op.kind in ("put", "cas") and op.value not in seen
        ]
        if not unseen:
            break
        pruned += len(unseen)
        dropped = {id(op) for op in unseen}
        kept = [op for op in kept if id(op) not in dropped]
    return kept, pruned


def check_key(
    ops: list[Operation], *, initial: Value = None, max_steps: int = DEFAULT_MAX_STEPS
) -> KeyResult:
    """Wing & Gong's search over one key's operations, memoised on (linearized set, state).

    Unknown operations never complete: each may take effect anywhere after its invoke, or not
    at all (the search succeeds once every ok operation is placed). Three exact reductions keep
    them from multiplying the search: ``prune``; an unknown operation is only placed where it
    changes the value; identical unknown operations are placed in invoke order only.
    """
    key = ops[0].key if ops else ""
    ops, pruned = prune(ops)
    ops = sorted(ops, key=lambda op: op.invoke)
    count = len(ops)
    # Unknown operations that do the same thing are interchangeable once both have been
    # invoked, so they are linearized in invoke order only: a later twin may go only after
    # an earlier one (swapping two of them in a linearization gives another one).
    twin_before = [-1] * count
    last_twin: dict[tuple[str, Value, Value], int] = {}
    for index, op in enumerate(ops):
        if op.outcome == "unknown":
            signature = (op.kind, op.value, op.expected)
            twin_before[index] = last_twin.get(signature, -1)
            last_twin[signature] = index

    # Entries 0..count-1 are calls, count..2*count-1 returns; a call sorts before a return at
    # the same time (overlapping, the permissive reading). Node 2*count is the list's head.
    times = [(op.invoke, 0, i) for i, op in enumerate(ops)]
    times += [(_end(op), 1, count + i) for i, op in enumerate(ops)]
    order = [entry for _, _, entry in sorted(times)]
    head = 2 * count
    nil = -1
    nxt = [nil] * (2 * count + 1)
    prv = [nil] * (2 * count + 1)
    previous = head
    for entry in order:
        nxt[previous] = entry
        prv[entry] = previous
        previous = entry

    def lift(call: int) -> None:
        ret = call + count
        nxt[prv[call]] = nxt[call]
        prv[nxt[call]] = prv[call]
        if nxt[ret] != nil:
            prv[nxt[ret]] = prv[ret]
        nxt[prv[ret]] = nxt[ret]

    def unlift(call: int) -> None:
        ret = call + count
        nxt[prv[ret]] = ret
        if nxt[ret] != nil:
            prv[nxt[ret]] = ret
        prv[nxt[call]] = call
        nxt[prv[call]] = call

    unknown = [op.outcome == "unknown" for op in ops]
    pending = unknown.count(False)
    state: Value = initial
    linearized = 0
    cache: set[tuple[int, Value]] = set()
    calls: list[tuple[int, Value]] = []
    best: tuple[int, list[int], Value, int] = (-1, [], initial, nil)
    steps = 0
    entry = nxt[head]
    while pending:
        steps += 1
        if steps > max_steps:
            raise BudgetExceededError(
                f"key {key!r}: no answer after {max_steps} steps ({count} operations)"
            )
        if entry < count:
            twin = twin_before[entry]
            if twin < 0 or (linearized >> twin) & 1:
                ok, new_state = step(state, ops[entry])
                # An unknown operation that would change nothing here (a delete of an absent
                # key, a cas whose compare fails) is as good as one that never took effect:
                # only the other placements are tried.
                if ok and (new_state != state or not unknown[entry]):
                    new_linearized = linearized | (1 << entry)
                    memo = (new_linearized, new_state)
                    if memo not in cache:
                        cache.add(memo)
                        calls.append((entry, state))
                        state = new_state
                        linearized = new_linearized
                        lift(entry)
                        if not unknown[entry]:
                            pending -= 1
                            if not pending:
                                # What is left is unknown: it never took effect (or did at the
                                # end, which nothing observed).
                                break
                        entry = nxt[head]
                        continue
            entry = nxt[entry]
        else:
            # A return reached: its operation cannot be linearized after this prefix. Undo.
            if len(calls) > best[0]:
                best = (len(calls), [c for c, _ in calls], state, entry)
            if not calls:
                return _failure(key, ops, pruned, steps, best, count)
            entry, state = calls.pop()
            linearized &= ~(1 << entry)
            unlift(entry)
            if not unknown[entry]:
                pending += 1
            entry = nxt[entry]
    return KeyResult(key, True, count, pruned, steps)


def _failure(  # noqa: PLR0917 - the search's locals, passed once
    key: str,
    ops: list[Operation],
    pruned: int,
    steps: int,
    best: tuple[int, list[int], Value, int],
    count: int,
) -> KeyResult:
    _, prefix, state, blocked = best
    done = set(prefix)
    # The operations pending after the prefix: invoked before the return that blocked it.
    blocked_at = _end(ops[blocked - count]) if blocked >= count else math.inf
    stuck = [
        op
        for index, op in enumerate(ops)
        if index not in done and op.invoke <= blocked_at and op.outcome == "ok"
    ]
    stuck.sort(key=lambda op: op.complete)
    return KeyResult(
        key,
        False,
        count,
        pruned,
        steps,
        prefix=[ops[i] for i in prefix],
        state=state,
        stuck=stuck,
    )


def renumber(history: list[Operation]) -> list[Operation]:
    """The same operations with ``index`` set to their position (for reports)."""
    return [replace(op, index=i) for i, op in enumerate(history)]
