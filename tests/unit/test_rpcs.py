"""The table of etcd RPCs (``puregrpc_etcd/_rpcs.py``): true to etcd's services, and the only
place in the package that spells a method path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf.message import Message

from puregrpc_etcd import _fast_kv_codec, _rpcs
from puregrpc_etcd._proto import rpc_pb2, v3election_pb2, v3lock_pb2

PACKAGE = Path(_rpcs.__file__).parent
FILES = {"rpc.proto": rpc_pb2, "v3lock.proto": v3lock_pb2, "v3election.proto": v3election_pb2}
# Retried after they were sent; every other unary RPC of the table only when it provably never
# reached a server. Go's clientv3 (client/v3/retry.go) but for AuthStatus and Leader (reads,
# repeatable here) and MoveLeader (Go repeats it); read-only txns and Alarm GETs decide per
# request (see _rpcs.py). Streams carry Go's flag.
# The streaming RPCs (test_proto.py checks their shapes against etcd's).
STREAMS = {"Watch", "LeaseKeepAlive", "Snapshot", "Observe"}
REPEATABLE_UNARY = {
    "Range",
    "LeaseGrant",
    "LeaseRevoke",
    "LeaseTimeToLive",
    "LeaseLeases",
    "MemberList",
    "Status",
    "Alarm",
    "Hash",
    "HashKV",
    "AuthStatus",
    "UserList",
    "UserGet",
    "RoleList",
    "RoleGet",
    "Leader",
}


def _method(path: str) -> object:
    match = re.fullmatch(r"/([\w.]+)\.(\w+)/(\w+)", path)
    assert match, path
    package, service, name = match.groups()
    for module in FILES.values():
        file = module.DESCRIPTOR
        if file.package == package and service in file.services_by_name:
            return file.services_by_name[service].methods_by_name[name]
    raise AssertionError(f"no service for {path}")


@pytest.mark.parametrize("rpc", _rpcs.ALL, ids=lambda rpc: rpc.path)
def test_every_entry_names_an_etcd_method_and_its_reply(rpc: _rpcs.Rpc[Message]) -> None:
    method = _method(rpc.path)
    reply = rpc.reply_type
    if reply in (
        _fast_kv_codec.RangeResponse,
        _fast_kv_codec.PutResponse,
    ):  # PyPy's readers of the same bytes
        reply = getattr(rpc_pb2, reply.__name__)
    assert reply.DESCRIPTOR.full_name == method.output_type.full_name  # type: ignore[attr-defined]
    assert rpc.repeatable == (rpc.name in STREAMS or rpc.name in REPEATABLE_UNARY)


def test_the_table_is_complete_and_has_no_duplicates() -> None:
    paths = [rpc.path for rpc in _rpcs.ALL]
    assert len(paths) == len(set(paths))
    assert len(paths) == len([v for v in vars(_rpcs).values() if isinstance(v, _rpcs.Rpc)])


def test_no_module_but_the_table_spells_a_method_path() -> None:
    spelled = re.compile(r"[\"'](/?(etcdserverpb|v3lockpb|v3electionpb)\.\w+/)")
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_rpcs.py" or "_proto" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if spelled.search(line):
                found.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
