"""get, put, del, txn and compaction against a real etcd, output compared with etcdctl 3.5's."""

from __future__ import annotations

import json

from cli_support import Runner, etcd_3_4, normalized


def test_get_outputs_match_etcdctl(cli: Runner, prefix: str) -> None:
    for key, value in (("a", "1"), ("b", "two words"), ("c", "multi\nline"), ("d", "")):
        assert cli("put", prefix + key, "--", value).code == 0
    cases = [
        [prefix + "a"],
        [prefix + "missing"],
        ["--prefix", prefix],
        ["--prefix", prefix, "--keys-only"],
        ["--prefix", prefix, "--print-value-only"],
        ["--prefix", prefix, "--limit", "2"],
        ["--prefix", prefix, "--sort-by", "VALUE", "--order", "DESCEND"],
        ["--prefix", prefix, "--order=DESCEND"],
        [prefix + "b", prefix + "d"],
        ["--from-key", prefix + "c"],
        ["--prefix", prefix, "--hex"],
        ["--prefix", prefix, "--consistency=s"],
    ]
    for args in cases:
        for output in ("simple", "json"):
            ours = cli("get", "-w", output, *args)
            theirs = cli.etcdctl("get", "-w", output, *args)
            assert ours.code == theirs.code, (args, ours.error)
            assert ours.err == theirs.err.splitlines(keepends=True)[-1:][0] if ours.code else True
            if ours.code:
                continue
            if "--from-key" in args and output == "json":
                continue  # other tests' keys after ours may change between the two runs
            if output == "json":
                assert json.loads(ours.out) == json.loads(theirs.out), args
            assert ours.out == theirs.out, args


def test_get_sorted_with_a_limit_matches_etcdctl(cli: Runner, prefix: str) -> None:
    # Created in the reverse of key order: without --order, etcd limits before it sorts.
    for key in ("e", "d", "c", "b", "a"):
        assert cli("put", prefix + key, key).code == 0
    cases = [
        ["--sort-by=CREATE", "--limit", "3"],
        ["--sort-by=CREATE", "--order=ASCEND", "--limit", "3"],
        ["--sort-by=MODIFY", "--order=DESCEND", "--limit", "2"],
        ["--sort-by=VERSION", "--limit", "1"],
        ["--sort-by=KEY", "--limit", "2"],
        ["--order=ASCEND", "--limit", "2"],
    ]
    for args in cases:
        ours = cli("get", "--prefix", prefix, *args)
        theirs = cli.etcdctl("get", "--prefix", prefix, *args)
        assert ours.code == theirs.code == 0, (args, ours.error)
        assert ours.out == theirs.out, args
    first = cli("get", "--prefix", prefix, "--sort-by=CREATE", "--limit", "3", "--keys-only")
    assert first.out.split() == [(prefix + key).encode() for key in ("d", "c", "b")]


def test_get_at_a_revision_and_count_only(cli: Runner, prefix: str) -> None:
    first = json.loads(cli("put", "-w", "json", prefix + "k", "v1").out)["header"]["revision"]
    cli("put", prefix + "k", "v2")
    old = cli("get", prefix + "k", "--rev", str(first), "--print-value-only")
    assert old.out == b"v1\n"
    assert old.out == cli.etcdctl("get", prefix + "k", f"--rev={first}", "--print-value-only").out
    count = cli("get", "--prefix", prefix, "--count-only", "-w", "json")
    assert json.loads(count.out)["count"] == 1
    assert "kvs" not in json.loads(count.out)
    assert cli("get", "--prefix", prefix, "--count-only").out == b"1\n"


def test_put_and_del_outputs_match_etcdctl(cli: Runner, prefix: str) -> None:
    ours, theirs = prefix + "ours/", prefix + "theirs/"
    script = [
        ("put", "{p}k", "v1"),
        ("put", "{p}k", "v2", "--prev-kv"),
        ("put", "{p}j", "x", "-w", "json"),
        ("put", "{p}j", "y", "--prev-kv", "-w", "json"),
        ("del", "{p}missing"),
        ("del", "{p}k", "--prev-kv"),
        ("del", "{p}", "--prefix", "--prev-kv", "-w", "json"),
        ("del", "{p}k", "-w", "json"),
    ]
    for step in script:
        mine = cli(*(word.format(p=ours) for word in step))
        real = cli.etcdctl(*(word.format(p=theirs) for word in step))
        assert mine.code == real.code == 0, (step, mine.error)
        if "json" in step:
            assert normalized(json.loads(mine.out), (ours, theirs)) == normalized(
                json.loads(real.out)
            ), step
        else:
            assert mine.out.replace(ours.encode(), theirs.encode()) == real.out, step


def test_put_reads_the_value_from_stdin_and_keeps_bytes(cli: Runner, prefix: str) -> None:
    assert cli("put", prefix + "file", stdin=b"line one\nline two\n").code == 0
    stored = cli.etcdctl("get", prefix + "file", "--print-value-only").out
    assert stored == b"line one\nline two\n\n"
    assert cli("put", prefix + "dash", "--", "-starts-with-dash").code == 0
    assert cli("get", prefix + "dash", "--print-value-only").out == b"-starts-with-dash\n"
    assert cli("put", prefix + "dash", "--ignore-value", "--prev-kv").out == (
        b"OK\n" + (prefix + "dash").encode() + b"\n-starts-with-dash\n"
    )


def test_put_with_a_lease_in_hex(cli: Runner, prefix: str) -> None:
    lease = cli.etcdctl("lease", "grant", "60").text.split()[1]
    assert cli("put", "--lease", lease, prefix + "leased", "v").code == 0
    attached = cli.etcdctl("lease", "timetolive", lease, "--keys").text
    assert f"attached keys([{prefix}leased])" in attached
    cli.etcdctl("lease", "revoke", lease)


TXN_INPUT = """\
mod("{p}a") > "0"
value("{p}a") = "1"
ver("{p}a") != "7"
c("{p}none") = "0"

put {p}b "hello world"
get {p}a
get {p}x --prefix
del {p}gone
put {p}c 3 --prev-kv

put {p}failed yes

"""


def test_txn_reads_etcdctl_syntax_and_prints_as_etcdctl(cli: Runner, prefix: str) -> None:
    ours, theirs = prefix + "o/", prefix + "t/"
    for p in (ours, theirs):
        cli("put", p + "a", "1")
        cli("put", p + "x1", "one")
    mine = cli("txn", stdin=TXN_INPUT.format(p=ours).encode())
    real = cli.etcdctl("txn", stdin=TXN_INPUT.format(p=theirs).encode())
    assert mine.code == real.code == 0, mine.error
    assert mine.out.startswith(b"SUCCESS\n\nOK\n")
    assert mine.out.replace(ours.encode(), theirs.encode()) == real.out
    failing = 'value("{p}a") = "nope"\n\nput {p}b never\n\nget {p}a\nput {p}f \'raw \\n\'\n\n'
    mine = cli("txn", "-w", "json", stdin=failing.format(p=ours).encode())
    real = cli.etcdctl("txn", "-w", "json", stdin=failing.format(p=theirs).encode())
    assert mine.code == real.code == 0
    if not etcd_3_4():  # etcdctl 3.4 names the responses ResponseRange, ResponsePut, ...
        assert normalized(json.loads(mine.out), (ours, theirs)) == normalized(json.loads(real.out))
    assert cli("get", ours + "f", "--print-value-only").out == b"raw \\n\n"


def test_txn_interactive_prompts(cli: Runner, prefix: str) -> None:
    result = cli("txn", "-i", stdin=f"\nput {prefix}k v\n\n\n".encode())
    assert result.code == 0
    assert result.text.startswith("compares:\nsuccess requests (get, put, del):\n")
    assert result.text.endswith("SUCCESS\n\nOK\n")


def test_compaction(cli: Runner, prefix: str) -> None:
    revision = json.loads(cli("put", "-w", "json", prefix + "k", "v").out)["header"]["revision"]
    result = cli("compaction", str(revision))
    assert (result.code, result.out) == (0, f"compacted revision {revision}\n".encode())
    gone = cli("get", prefix + "k", "--rev", str(revision - 1))
    assert gone.code == 1
    assert gone.error == "Error: etcdserver: mvcc: required revision has been compacted\n"
    assert cli("compaction", "--physical", str(revision)).code == 1  # compacted already
