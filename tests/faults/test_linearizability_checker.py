"""The linearizability checker on its own (no etcd, no network): hand-written histories it must
accept and reject, and random ones checked against a brute-force search over every order."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace

import pytest
from linearizability import (
    BudgetExceededError,
    Operation,
    Value,
    check,
    check_key,
    renumber,
)

INF = math.inf


def op(kind: str, start: float, end: float, **fields: object) -> Operation:
    fields.setdefault("key", "k")
    return Operation(kind=kind, invoke=start, complete=end, **fields)  # type: ignore[arg-type]


def put(start: float, end: float, value: bytes, saw: Value = None, **f: object) -> Operation:
    return op("put", start, end, value=value, observed=saw, **f)


def get(start: float, end: float, saw: Value, **f: object) -> Operation:
    return op("get", start, end, observed=saw, **f)


def delete(start: float, end: float, saw: Value, **f: object) -> Operation:
    return op("delete", start, end, observed=saw, **f)


def cas(  # noqa: PLR0917 - the fields in the order a history is written
    start: float,
    end: float,
    expected: Value,
    value: bytes,
    ok: bool,
    saw: Value = None,
    **f: object,
) -> Operation:
    observed = expected if ok else saw
    return op(
        "cas", start, end, expected=expected, value=value, succeeded=ok, observed=observed, **f
    )


def unknown(operation: Operation) -> Operation:
    return replace(operation, outcome="unknown", complete=INF, observed=None, succeeded=None)


def failed(operation: Operation) -> Operation:
    return replace(operation, outcome="failed", observed=None, succeeded=None)


def linearizable(*ops: Operation) -> bool:
    return check(renumber(list(ops))).linearizable


# Hand-written histories.


def test_sequential_history_is_linearizable() -> None:
    assert linearizable(
        put(0, 1, b"a"),
        get(2, 3, b"a"),
        put(4, 5, b"b", b"a"),
        cas(6, 7, b"b", b"c", True),
        cas(8, 9, b"b", b"d", False, b"c"),
        delete(10, 11, b"c"),
        get(12, 13, None),
        delete(14, 15, None),
        cas(16, 17, None, b"e", True),
    )


def test_empty_history() -> None:
    assert check([]).linearizable


def test_stale_read_after_a_completed_write_is_rejected() -> None:
    assert not linearizable(put(0, 1, b"a"), put(2, 3, b"b", b"a"), get(4, 5, b"a"))


def test_lost_write_is_rejected() -> None:
    assert not linearizable(put(0, 1, b"a"), get(2, 3, None))


def test_two_cas_from_the_same_value_cannot_both_succeed() -> None:
    first = cas(2, 5, b"a", b"b", True)
    second = cas(3, 6, b"a", b"c", True)
    assert not linearizable(put(0, 1, b"a"), first, second)
    # One of them failing, having seen the other's value, is fine (either way round).
    assert linearizable(put(0, 1, b"a"), first, cas(3, 6, b"a", b"c", False, b"b"))
    assert linearizable(put(0, 1, b"a"), cas(2, 5, b"a", b"b", False, b"c"), second)


def test_read_of_a_value_never_written_is_rejected() -> None:
    assert not linearizable(put(0, 1, b"a"), get(2, 3, b"zzz"))


def test_put_must_see_the_previous_value() -> None:
    assert not linearizable(put(0, 1, b"a"), put(2, 3, b"b", None))


def test_read_your_writes_across_clients() -> None:
    # Client 0 writes twice; client 1 then sees the second value; client 0 then reads the first.
    assert not linearizable(
        put(0, 1, b"v1", client=0),
        put(2, 3, b"v2", b"v1", client=0),
        get(4, 5, b"v2", client=1),
        get(6, 7, b"v1", client=0),
    )


def test_concurrent_reads_may_see_either_side_of_a_write_but_not_go_back() -> None:
    write = put(0, 10, b"a")
    assert linearizable(write, get(1, 2, None), get(3, 4, b"a"))
    assert linearizable(write, get(1, 2, b"a"), get(3, 4, b"a"))
    assert not linearizable(write, get(1, 2, b"a"), get(3, 4, None))
    # Overlapping reads are not ordered with each other.
    assert linearizable(write, get(1, 5, b"a"), get(2, 6, None))


def test_unknown_write_may_have_been_applied_or_not() -> None:
    maybe = unknown(put(0, 1, b"a"))
    assert linearizable(maybe, get(5, 6, b"a"))
    assert linearizable(maybe, get(5, 6, None))
    # Applied late: first unseen, then seen.
    assert linearizable(maybe, get(5, 6, None), get(7, 8, b"a"))
    # But once seen it cannot vanish without a write.
    assert not linearizable(maybe, get(5, 6, b"a"), get(7, 8, None))
    # Nor take effect before it was invoked.
    assert not linearizable(get(0, 1, b"a"), unknown(put(2, 3, b"a")))


def test_unknown_write_applied_once_only() -> None:
    maybe = unknown(put(0, 1, b"a"))
    # Seen, overwritten, then seen again: that would be a second application.
    assert not linearizable(maybe, get(2, 3, b"a"), put(4, 5, b"b", b"a"), get(6, 7, b"a"))


def test_failed_write_must_not_take_effect() -> None:
    assert linearizable(failed(put(0, 1, b"a")), get(2, 3, None))
    assert not linearizable(failed(put(0, 1, b"a")), get(2, 3, b"a"))


def test_unknown_delete_and_cas() -> None:
    base = put(0, 1, b"a")
    maybe_delete = unknown(delete(2, 3, None))
    assert linearizable(base, maybe_delete, get(4, 5, b"a"), get(6, 7, None))
    assert not linearizable(base, maybe_delete, get(4, 5, None), get(6, 7, b"a"))
    maybe_cas = unknown(cas(2, 3, b"a", b"b", True))
    assert linearizable(base, maybe_cas, get(4, 5, b"b"))
    assert linearizable(base, maybe_cas, get(4, 5, b"a"))
    # Its compare must hold where it takes effect.
    assert not linearizable(base, put(2, 3, b"x", b"a"), unknown(cas(4, 5, b"a", b"b", True)),
                            get(6, 7, b"b"))  # fmt: skip


def test_unknown_unseen_writes_are_pruned_but_seen_ones_are_not() -> None:
    history = renumber(
        [
            put(0, 1, b"a"),
            unknown(put(2, 3, b"ghost")),
            unknown(put(2, 3, b"b")),
            get(4, 5, b"b"),
        ]
    )
    result = check(history)
    assert result.linearizable
    assert result.keys["k"].pruned == 1
    assert result.keys["k"].operations == 3


def test_keys_are_independent() -> None:
    history = renumber(
        [
            put(0, 1, b"a", key="x"),
            get(2, 3, None, key="y"),
            get(2, 3, b"a", key="x"),
        ]
    )
    assert check(history).linearizable
    history.append(get(4, 5, b"a", key="y"))
    result = check(renumber(history))
    assert not result.linearizable
    assert result.keys["x"].linearizable
    assert not result.keys["y"].linearizable


def test_failure_report_names_the_stuck_operation() -> None:
    history = renumber([put(0, 1, b"a"), put(2, 3, b"b", b"a"), get(4, 5, b"a")])
    result = check(history)
    text = result.explain(history)
    assert "key 'k': not linearizable" in text
    assert "#2 client 0 key 'k' [4.000000, 5.000000] get(): saw b'a'" in text
    assert result.keys["k"].state == b"b"


def test_bad_operations_are_refused() -> None:
    with pytest.raises(ValueError, match="needs the value"):
        op("put", 0, 1)
    with pytest.raises(ValueError, match="succeeded"):
        op("cas", 0, 1, value=b"v")
    with pytest.raises(ValueError, match="unknown kind"):
        op("swap", 0, 1)
    with pytest.raises(ValueError, match="before it is invoked"):
        get(2, 1, None)


def test_search_budget_is_enforced() -> None:
    # Concurrent reads can be linearized in 2**12 orders that all end in the same state, and a
    # last read that none of them explains makes the search try every one.
    ops = [put(0, 1, b"a")] + [get(2, 100, b"a") for _ in range(12)] + [get(200, 201, b"zzz")]
    assert not check_key(ops).linearizable
    with pytest.raises(BudgetExceededError, match="no answer after 1000 steps"):
        check_key(ops, max_steps=1000)


# Random histories against a brute-force oracle.


def apply(state: Value, o: Operation) -> tuple[Value] | None:
    hit = o.kind == "cas" and state == o.expected
    if o.outcome == "ok":
        if o.observed != state:
            return None
        if o.kind == "cas" and o.succeeded != hit:
            return None
    if o.kind == "put" or hit:
        return (o.value,)
    if o.kind == "delete":
        return (None,)
    return (state,)


def brute_force(history: list[Operation]) -> bool:
    """Every subset of the unknown operations, in every order that respects real time."""
    mandatory = [o for o in history if o.outcome == "ok"]
    optional = [o for o in history if o.outcome == "unknown"]

    def before(a: Operation, b: Operation) -> bool:
        return a.outcome == "ok" and a.complete < b.invoke

    def search(placed: list[Operation], rest: list[Operation], state: Value) -> bool:
        if not rest:
            return True
        for index, candidate in enumerate(rest):
            others = rest[:index] + rest[index + 1 :]
            if any(before(other, candidate) for other in others):
                continue
            after = apply(state, candidate)
            if after is not None and search([*placed, candidate], others, after[0]):
                return True
        return False

    for size in range(len(optional) + 1):
        for chosen in itertools.combinations(optional, size):
            if search([], mandatory + list(chosen), None):
                return True
    return False


def generate(rng: random.Random, count: int, clients: int, values: int) -> list[Operation]:
    """A linearizable history: operations with random overlapping intervals take effect at a
    random point inside them; some are then reported unknown (applied or not) or failed."""
    clock = [0.0] * clients
    planned = []
    for number in range(count):
        client = rng.randrange(clients)
        start = clock[client] + rng.uniform(0, 2)
        end = start + rng.uniform(0.1, 4)
        clock[client] = end
        point = rng.uniform(start, end)
        planned.append((point, number, client, start, end))
    planned.sort()
    state: Value = None
    written: list[bytes] = []
    ops = []
    for point, number, client, start, end in planned:
        del point
        kind = rng.choice(["get", "put", "put", "delete", "cas", "cas"])
        fate = rng.random()
        outcome = "unknown" if fate < 0.2 else ("failed" if fate < 0.25 else "ok")
        applied = outcome == "ok" or (outcome == "unknown" and rng.random() < 0.5)
        value = f"v{rng.randrange(values)}" if values else f"v{number}"
        fields: dict[str, object] = {"client": client, "observed": state}
        if kind in ("put", "cas"):
            fields["value"] = value.encode()
        if kind == "cas":
            pick = rng.random()
            fields["expected"] = state if pick < 0.5 else (rng.choice(written) if written else None)
            fields["succeeded"] = state == fields["expected"]
        o = op(kind, start, end, **fields)
        if applied:
            after = apply(state, replace(o, outcome="unknown"))
            assert after is not None
            state = after[0]
        if kind in ("put", "cas") and o.value is not None:
            written.append(o.value)
        if outcome == "unknown":
            o = unknown(o)
        elif outcome == "failed":
            o = failed(o)
        ops.append(o)
    ops.sort(key=lambda o: o.invoke)
    return renumber(ops)


def mutate(rng: random.Random, history: list[Operation]) -> list[Operation]:
    """One small change that may (or may not) break linearizability."""
    ops = list(history)
    index = rng.randrange(len(ops))
    target = ops[index]
    choice = rng.randrange(5)
    if choice == 0 and target.outcome == "ok":
        seen = {o.value for o in ops if o.value is not None} | {None, b"never"}
        ops[index] = replace(target, observed=rng.choice(sorted(seen, key=repr)))
    elif choice == 1 and target.kind == "cas" and target.outcome == "ok":
        ops[index] = replace(target, succeeded=not target.succeeded)
    elif choice == 2 and target.outcome == "unknown":
        ops[index] = failed(replace(target, complete=target.invoke + 1))
    elif choice == 3:
        shift = rng.uniform(-3, 3)
        ops[index] = replace(target, invoke=target.invoke + shift, complete=target.complete + shift)
    else:
        a, b = rng.sample(range(len(ops)), 2)
        ops[a] = replace(ops[a], observed=ops[b].observed)
    return ops


@pytest.mark.parametrize("seed", range(4))
def test_random_small_histories_agree_with_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    verdicts = {True: 0, False: 0}
    for _ in range(100):
        history = generate(rng, rng.randrange(2, 8), rng.randrange(1, 4), rng.choice([0, 2, 3]))
        assert check(history).linearizable, history
        assert brute_force(history)
        mutated = mutate(rng, history)
        expected = brute_force(mutated)
        assert check(mutated).linearizable == expected, mutated
        verdicts[expected] += 1
    # The mutations break a good share of the histories, and leave others fine.
    assert verdicts[False] >= 20
    assert verdicts[True] >= 20


@pytest.mark.parametrize("seed", range(3))
def test_random_large_histories(seed: int) -> None:
    rng = random.Random(100 + seed)
    for _ in range(5):
        history = generate(rng, 400, 5, 0)
        assert check(history).linearizable
        # A read of a value nobody wrote can never be explained.
        reads = [i for i, o in enumerate(history) if o.kind == "get" and o.outcome == "ok"]
        broken = list(history)
        index = rng.choice(reads)
        broken[index] = replace(broken[index], observed=b"never written")
        result = check(broken)
        assert not result.linearizable
        assert any(o.index == index for o in result.keys["k"].stuck)
