"""lease grant, timetolive, list, keep-alive and revoke, compared with etcdctl 3.5's output."""

from __future__ import annotations

import json
import re

from cli_support import Runner, normalized


def _lease_id(result_text: str) -> str:
    match = re.match(r"lease ([0-9a-f]{16}) granted with TTL\((\d+)s\)\n$", result_text)
    assert match is not None, result_text
    return match.group(1)


def test_grant_and_revoke_print_as_etcdctl(cli: Runner) -> None:
    ours, theirs = cli("lease", "grant", "60"), cli.etcdctl("lease", "grant", "60")
    assert ours.code == theirs.code == 0
    our_id, their_id = _lease_id(ours.text), _lease_id(theirs.text)
    assert ours.text.replace(our_id, their_id) == theirs.text
    mine, real = cli("lease", "revoke", our_id), cli.etcdctl("lease", "revoke", their_id)
    assert mine.text.replace(our_id, their_id) == real.text == f"lease {their_id} revoked\n"
    grant = ("lease", "grant", "30", "-w", "json")
    granted = [json.loads(cli(*grant).out), json.loads(cli.etcdctl(*grant).out)]
    for reply in granted:
        reply["ID"] = "*"
    assert normalized(granted[0]) == normalized(granted[1])
    again = cli("lease", "revoke", our_id)
    assert (again.code, again.error) == (1, "Error: etcdserver: requested lease not found\n")


def test_timetolive_keep_alive_and_list_print_as_etcdctl(cli: Runner, prefix: str) -> None:
    lease = _lease_id(cli("lease", "grant", "100").text)
    cli("put", "--lease", lease, prefix + "a", "1")
    cli("put", "--lease", lease, prefix + "b", "2")
    remaining = re.compile(rb"remaining\(\d+s\)")
    plain = ["lease", "timetolive", lease]
    assert remaining.sub(b"*", cli(*plain).out) == remaining.sub(b"*", cli.etcdctl(*plain).out)
    # etcd lists a lease's keys in no particular order: compare them as sets.
    attached = re.compile(rb"attached keys\(\[(.*)\]\)")
    with_keys = [*plain, "--keys"]
    ours_keys = attached.search(cli(*with_keys).out)
    theirs_keys = attached.search(cli.etcdctl(*with_keys).out)
    assert ours_keys is not None
    assert theirs_keys is not None
    assert sorted(ours_keys.group(1).split()) == sorted(theirs_keys.group(1).split())
    assert sorted(ours_keys.group(1).split()) == [(prefix + n).encode() for n in "ab"]
    as_json = [*with_keys, "-w", "json"]
    ours, theirs = json.loads(cli(*as_json).out), json.loads(cli.etcdctl(*as_json).out)
    for reply in (ours, theirs):
        reply["ttl"] = "*"
        reply["keys"] = sorted(reply["keys"])
    assert normalized(ours) == normalized(theirs)
    once = ["lease", "keep-alive", "--once", lease]
    assert (
        cli(*once).out
        == cli.etcdctl(*once).out
        == f"lease {lease} keepalived with TTL(100)\n".encode()
    )
    ours, theirs = (
        json.loads(r.out) for r in (cli(*once, "-w", "json"), cli.etcdctl(*once, "-w", "json"))
    )
    assert normalized(ours) == normalized(theirs)
    listed, real = cli("lease", "list"), cli.etcdctl("lease", "list")
    assert sorted(listed.text.splitlines()) == sorted(real.text.splitlines())
    listed_json = json.loads(cli("lease", "list", "-w", "json").out)
    real_json = json.loads(cli.etcdctl("lease", "list", "-w", "json").out)
    for reply in (listed_json, real_json):
        reply["leases"] = sorted(item["id"] for item in reply["leases"])
    assert normalized(listed_json) == normalized(real_json)
    cli("lease", "revoke", lease)
    expired = ["lease", "timetolive", lease]
    assert (
        cli(*expired).out
        == cli.etcdctl(*expired).out
        == f"lease {lease} already expired\n".encode()
    )
    gone = cli("lease", "keep-alive", lease)
    assert (gone.code, gone.text) == (0, f"lease {lease} expired or revoked.\n")
    gone_once = cli("lease", "keep-alive", "--once", lease)
    assert gone_once.code == 1
    assert gone_once.error.endswith("requested lease not found\n")
    assert gone_once.error.count("\n") == 1


def test_bad_lease_ids_are_argument_errors(cli: Runner) -> None:
    result = cli("lease", "revoke", "zz")
    assert result.code == 128
    assert result.error.startswith("Error: argument LEASE_ID: bad ID 'zz', expecting an ID in hex")
    assert result.error.count("\n") == 1
