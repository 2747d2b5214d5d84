"""The generated etcd protobuf code: fresh, shaped like etcd 3.5's API, and in a private pool.

Checked against protoc's own output, against the descriptors compiled into the etcd binary, and
against bytes written by a real etcdctl.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool

from puregrpc_etcd._proto import auth_pb2, kv_pb2, rpc_pb2, v3election_pb2, v3lock_pb2
from puregrpc_etcd.testing import EtcdServer, etcd_version, find_etcd, find_etcd_tool

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "puregrpc_etcd" / "_proto"
GENERATE = REPO / "schema" / "generate.py"
MODULES = (kv_pb2, auth_pb2, rpc_pb2, v3lock_pb2, v3election_pb2)
SUBPROCESS_TIMEOUT = 60

UNARY, SERVER_STREAM, BIDI = (False, False), (False, True), (True, True)

# Every method of etcd 3.5's client API, with its streaming shape.
ETCD_METHODS = {
    "/etcdserverpb.KV/Range": UNARY,
    "/etcdserverpb.KV/Put": UNARY,
    "/etcdserverpb.KV/DeleteRange": UNARY,
    "/etcdserverpb.KV/Txn": UNARY,
    "/etcdserverpb.KV/Compact": UNARY,
    "/etcdserverpb.Watch/Watch": BIDI,
    "/etcdserverpb.Lease/LeaseGrant": UNARY,
    "/etcdserverpb.Lease/LeaseRevoke": UNARY,
    "/etcdserverpb.Lease/LeaseKeepAlive": BIDI,
    "/etcdserverpb.Lease/LeaseTimeToLive": UNARY,
    "/etcdserverpb.Lease/LeaseLeases": UNARY,
    "/etcdserverpb.Cluster/MemberAdd": UNARY,
    "/etcdserverpb.Cluster/MemberRemove": UNARY,
    "/etcdserverpb.Cluster/MemberUpdate": UNARY,
    "/etcdserverpb.Cluster/MemberList": UNARY,
    "/etcdserverpb.Cluster/MemberPromote": UNARY,
    "/etcdserverpb.Maintenance/Alarm": UNARY,
    "/etcdserverpb.Maintenance/Status": UNARY,
    "/etcdserverpb.Maintenance/Defragment": UNARY,
    "/etcdserverpb.Maintenance/Hash": UNARY,
    "/etcdserverpb.Maintenance/HashKV": UNARY,
    "/etcdserverpb.Maintenance/Snapshot": SERVER_STREAM,
    "/etcdserverpb.Maintenance/MoveLeader": UNARY,
    "/etcdserverpb.Maintenance/Downgrade": UNARY,
    **{
        f"/etcdserverpb.Auth/{name}": UNARY
        for name in [
            "AuthEnable",
            "AuthDisable",
            "AuthStatus",
            "Authenticate",
            "UserAdd",
            "UserGet",
            "UserList",
            "UserDelete",
            "UserChangePassword",
            "UserGrantRole",
            "UserRevokeRole",
            "RoleAdd",
            "RoleGet",
            "RoleList",
            "RoleDelete",
            "RoleGrantPermission",
            "RoleRevokePermission",
        ]
    },
    "/v3lockpb.Lock/Lock": UNARY,
    "/v3lockpb.Lock/Unlock": UNARY,
    "/v3electionpb.Election/Campaign": UNARY,
    "/v3electionpb.Election/Proclaim": UNARY,
    "/v3electionpb.Election/Leader": UNARY,
    "/v3electionpb.Election/Observe": SERVER_STREAM,
    "/v3electionpb.Election/Resign": UNARY,
}


def subprocess_env() -> dict[str, str]:
    # The child must import this checkout's package, also where it is not installed (PyPy).
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_python(
    args: list[str], cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=subprocess_env(),
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def pinned_protoc_available() -> bool:
    protoc = shutil.which("protoc")
    if protoc is None:
        return False
    version = subprocess.run([protoc, "--version"], capture_output=True, text=True, check=False)
    return version.stdout.strip() == "libprotoc 3.21.12"


# Freshness and the generator.


@pytest.mark.skipif(
    not pinned_protoc_available(),
    reason="needs protoc 3.21.12: apt-get install protobuf-compiler (Debian bookworm)",
)
def test_committed_code_is_what_the_schema_generates(tmp_path: Path) -> None:
    run_python([str(GENERATE), "--out", str(tmp_path)])
    generated = sorted(path.name for path in tmp_path.iterdir())
    committed = sorted(path.name for path in PROTO_DIR.glob("*_pb2.py*"))
    assert generated == committed
    stale = [
        name
        for name in generated
        if (tmp_path / name).read_bytes() != (PROTO_DIR / name).read_bytes()
    ]
    assert not stale, f"stale generated code, run `python schema/generate.py`: {stale}"


def test_generator_refuses_an_unpinned_protoc(tmp_path: Path) -> None:
    fake_protoc = tmp_path / "protoc"
    fake_protoc.write_text("#!/bin/sh\necho 'libprotoc 25.1'\n")
    fake_protoc.chmod(0o755)
    out_dir = tmp_path / "out"
    result = run_python(
        [str(GENERATE), "--protoc", str(fake_protoc), "--out", str(out_dir)], check=False
    )
    assert result.returncode == 1
    assert "libprotoc 3.21.12" in result.stderr
    assert "libprotoc 25.1" in result.stderr
    assert not out_dir.exists()


def test_generated_modules_import_each_other_within_the_package() -> None:
    for path in PROTO_DIR.glob("*_pb2.py*"):
        for line in path.read_text().splitlines():
            if line.startswith(("import ", "from ")):
                assert line.startswith(("from . import ", "from google.protobuf", "from typing")), (
                    f"{path.name}: {line}"
                )


# The API's shape.


def file_proto(module: ModuleType) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    return proto


def all_method_paths() -> dict[str, tuple[bool, bool]]:
    # From the descriptor protos: upb's MethodDescriptor lacks client_streaming and
    # server_streaming before protobuf 4.25.
    return {
        f"/{proto.package}.{service.name}/{method.name}": (
            method.client_streaming,
            method.server_streaming,
        )
        for proto in map(file_proto, MODULES)
        for service in proto.service
        for method in service.method
    }


def test_every_etcd_method_has_its_path_and_streaming_shape() -> None:
    assert all_method_paths() == ETCD_METHODS


def test_methods_name_their_message_classes() -> None:
    range_method = rpc_pb2.DESCRIPTOR.services_by_name["KV"].methods_by_name["Range"]
    assert range_method.input_type is rpc_pb2.RangeRequest.DESCRIPTOR
    assert range_method.output_type is rpc_pb2.RangeResponse.DESCRIPTOR
    observe = v3election_pb2.DESCRIPTOR.services_by_name["Election"].methods_by_name["Observe"]
    assert observe.output_type is v3election_pb2.LeaderResponse.DESCRIPTOR
    lock = v3lock_pb2.DESCRIPTOR.services_by_name["Lock"].methods_by_name["Lock"]
    header = lock.output_type.fields_by_name["header"]
    assert header.message_type is rpc_pb2.ResponseHeader.DESCRIPTOR


def flatten(file_proto: descriptor_pb2.FileDescriptorProto) -> set[tuple[object, ...]]:
    """Every wire-relevant fact of a file: fields, enum values, methods (not names of files)."""
    facts: set[tuple[object, ...]] = set()

    def add_enum(scope: str, enum: descriptor_pb2.EnumDescriptorProto) -> None:
        for value in enum.value:
            facts.add(("enum", f"{scope}.{enum.name}", value.name, value.number))

    def add_message(scope: str, message: descriptor_pb2.DescriptorProto) -> None:
        name = f"{scope}.{message.name}"
        facts.add(("message", name))
        for field in message.field:
            oneof = ""
            if field.HasField("oneof_index"):
                oneof = message.oneof_decl[field.oneof_index].name
            facts.add(("field", name, field.name, field.number, field.label, field.type))
            facts.add(("field type", name, field.name, field.type_name, oneof))
        for enum in message.enum_type:
            add_enum(name, enum)
        for nested in message.nested_type:
            add_message(name, nested)

    for enum in file_proto.enum_type:
        add_enum(file_proto.package, enum)
    for message in file_proto.message_type:
        add_message(file_proto.package, message)
    for service in file_proto.service:
        for method in service.method:
            facts.add(
                (
                    "method",
                    f"{file_proto.package}.{service.name}",
                    method.name,
                    method.input_type,
                    method.output_type,
                    method.client_streaming,
                    method.server_streaming,
                )
            )
    return facts


def descriptors_compiled_into(binary: str, wanted: set[tuple[str, str]]) -> dict[str, bytes]:
    # etcd's Go code (gogoproto) embeds each .proto's FileDescriptorProto, gzipped, in the binary.
    data = Path(binary).read_bytes()
    found: dict[str, bytes] = {}
    start = data.find(b"\x1f\x8b\x08")
    while start >= 0 and len(found) < len(wanted):
        try:
            raw = zlib.decompressobj(wbits=31).decompress(data[start : start + (1 << 20)])
            candidate = descriptor_pb2.FileDescriptorProto.FromString(raw)
        except Exception:  # most gzip magics in a binary start no descriptor
            candidate = None
        if candidate is not None and (candidate.name, candidate.package) in wanted:
            found.setdefault(candidate.package, raw)
        start = data.find(b"\x1f\x8b\x08", start + 1)
    return found


def test_schema_matches_the_descriptors_compiled_into_etcd() -> None:
    binary = find_etcd()
    version = etcd_version(binary)
    assert version >= (3, 5), f"{binary} is etcd {version}; the schema is etcd 3.5's"
    ours = {proto.package: proto for proto in map(file_proto, MODULES)}
    wanted = {(proto.name.rsplit("/", 1)[-1], package) for package, proto in ours.items()}
    theirs = descriptors_compiled_into(binary, wanted)
    assert sorted(theirs) == sorted(ours)
    for package, proto in ours.items():
        etcd_facts = flatten(descriptor_pb2.FileDescriptorProto.FromString(theirs[package]))
        our_facts = flatten(proto)
        assert our_facts - etcd_facts == set(), f"{package}: not in etcd {version}"
        if version[:2] == (3, 5):
            assert etcd_facts - our_facts == set(), f"{package}: etcd 3.5 has more"


# Messages.


def test_messages_encode_to_etcd_field_numbers() -> None:
    request = rpc_pb2.RangeRequest(key=b"a", range_end=b"b", limit=3, max_create_revision=1)
    assert request.SerializeToString() == b"\x0a\x01a\x12\x01b\x18\x03\x68\x01"
    create = rpc_pb2.WatchCreateRequest(
        key=b"k", filters=[rpc_pb2.WatchCreateRequest.NODELETE], watch_id=7, fragment=True
    )
    assert rpc_pb2.WatchRequest(create_request=create).SerializeToString() == (
        b"\x0a\x0a\x0a\x01k\x2a\x01\x01\x38\x07\x40\x01"
    )
    progress = rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
    assert progress.SerializeToString() == b"\x1a\x00"


def test_messages_round_trip() -> None:
    txn = rpc_pb2.TxnRequest(
        compare=[
            rpc_pb2.Compare(
                key=b"k",
                target=rpc_pb2.Compare.MOD,
                result=rpc_pb2.Compare.LESS,
                mod_revision=9,
                range_end=b"l",
            )
        ],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k", value=b"\x00\xff"))],
        failure=[
            rpc_pb2.RequestOp(
                request_txn=rpc_pb2.TxnRequest(
                    success=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"k"))]
                )
            )
        ],
    )
    decoded = rpc_pb2.TxnRequest.FromString(txn.SerializeToString())
    assert decoded == txn
    assert decoded.compare[0].WhichOneof("target_union") == "mod_revision"
    assert decoded.failure[0].WhichOneof("request") == "request_txn"
    event = kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=b"x", mod_revision=4))
    response = rpc_pb2.WatchResponse(watch_id=1, fragment=True, events=[event])
    assert rpc_pb2.WatchResponse.FromString(response.SerializeToString()).events[0] == event
    status = rpc_pb2.StatusResponse(errors=["NOSPACE"], dbSizeInUse=10, isLearner=True)
    assert rpc_pb2.StatusResponse.FromString(status.SerializeToString()) == status
    member = rpc_pb2.Member(ID=2**64 - 1, isLearner=True, clientURLs=["http://127.0.0.1:2379"])
    assert rpc_pb2.Member.FromString(member.SerializeToString()).ID == 2**64 - 1
    no_password = auth_pb2.UserAddOptions(no_password=True)
    add_user = rpc_pb2.AuthUserAddRequest(name="u", options=no_password)
    assert rpc_pb2.AuthUserAddRequest.FromString(add_user.SerializeToString()) == add_user
    leader = v3election_pb2.LeaderKey(name=b"e", key=b"e/1", rev=3, lease=5)
    proclaim = v3election_pb2.ProclaimRequest(leader=leader, value=b"v")
    assert v3election_pb2.ProclaimRequest.FromString(proclaim.SerializeToString()) == proclaim


def test_fields_added_by_newer_etcd_are_skipped() -> None:
    # etcd 3.6 adds HashKVResponse.hash_revision (field 4); a 3.5 schema must still decode it.
    wire = rpc_pb2.HashKVResponse(hash=5, compact_revision=2).SerializeToString() + b"\x20\x07"
    decoded = rpc_pb2.HashKVResponse.FromString(wire)
    assert (decoded.hash, decoded.compact_revision) == (5, 2)


def test_messages_pickle_by_their_real_module() -> None:
    assert rpc_pb2.RangeResponse.__module__ == "puregrpc_etcd._proto.rpc_pb2"
    assert kv_pb2.Event.__module__ == "puregrpc_etcd._proto.kv_pb2"
    response = rpc_pb2.RangeResponse(kvs=[kv_pb2.KeyValue(key=b"a", value=b"b")], count=1)
    assert pickle.loads(pickle.dumps(response)) == response


# The private descriptor pool.


def test_descriptors_live_in_the_private_pool_only() -> None:
    assert rpc_pb2.DESCRIPTOR.pool is not descriptor_pool.Default()
    assert v3lock_pb2.DESCRIPTOR.pool is rpc_pb2.DESCRIPTOR.pool
    for name in ("etcdserverpb.RangeRequest", "mvccpb.KeyValue", "v3lockpb.LockRequest"):
        with pytest.raises(KeyError):
            descriptor_pool.Default().FindMessageTypeByName(name)
    assert isinstance(
        rpc_pb2.DESCRIPTOR.pool.FindMessageTypeByName("etcdserverpb.RangeRequest"),
        descriptor.Descriptor,
    )


def other_clients_schema(path: Path) -> None:
    """Write, for a child process, etcd files as another client registers them: top-level
    names (`rpc.proto`, `kv.proto`, ...) and a ResponseHeader that differs from ours."""
    files = []
    for module in (kv_pb2, auth_pb2, rpc_pb2):
        proto = file_proto(module)
        proto.name = proto.name.rsplit("/", 1)[-1]
        renamed = [dependency.rsplit("/", 1)[-1] for dependency in proto.dependency]
        del proto.dependency[:]
        proto.dependency.extend(renamed)
        if module is rpc_pb2:
            header = next(m for m in proto.message_type if m.name == "ResponseHeader")
            header.field.add(
                name="other_client_only",
                number=99,
                type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            )
        files.append(proto.SerializeToString())
    path.write_bytes(pickle.dumps(files))


REGISTER_OTHER_CLIENT = """
    import pickle
    from google.protobuf import descriptor_pool
    from google.protobuf.internal import builder

    other = {}
    for raw in pickle.loads(open("other_client.pickle", "rb").read()):
        # What an etcd client generated by protoc does at import: default pool, default builder.
        file_descriptor = descriptor_pool.Default().AddSerializedFile(raw)
        builder.BuildMessageAndEnumDescriptors(file_descriptor, other)
        builder.BuildTopDescriptorsAndMessages(file_descriptor, "other_client", other)
"""

IMPORT_OURS = """
    from puregrpc_etcd._proto import kv_pb2, rpc_pb2, v3election_pb2, v3lock_pb2
"""

USE_BOTH = """
    theirs = other["ResponseHeader"](revision=5, other_client_only="x")
    assert rpc_pb2.ResponseHeader.FromString(theirs.SerializeToString()).revision == 5
    assert "other_client_only" not in rpc_pb2.ResponseHeader.DESCRIPTOR.fields_by_name
    assert other["ResponseHeader"].DESCRIPTOR.file.pool is descriptor_pool.Default()
    ours = rpc_pb2.RangeResponse(header={"revision": 5}, kvs=[kv_pb2.KeyValue(key=b"k")])
    assert other["RangeResponse"].FromString(ours.SerializeToString()).kvs[0].key == b"k"
    print("both clients work")
"""


@pytest.mark.parametrize(
    "order", [(REGISTER_OTHER_CLIENT, IMPORT_OURS), (IMPORT_OURS, REGISTER_OTHER_CLIENT)]
)
def test_another_etcd_client_in_the_same_process_does_not_conflict(
    tmp_path: Path, order: tuple[str, str]
) -> None:
    other_clients_schema(tmp_path / "other_client.pickle")
    child = "".join(textwrap.dedent(part) for part in (*order, USE_BOTH))
    (tmp_path / "child.py").write_text(child)
    result = run_python(["child.py"], cwd=tmp_path)
    assert "both clients work" in result.stdout


# Against a real etcd.


def etcdctl(server: EtcdServer, *args: str) -> bytes:
    return subprocess.run(
        [find_etcd_tool("etcdctl"), f"--endpoints={server.endpoint}", *args],
        capture_output=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=True,
    ).stdout


def test_decodes_what_etcdctl_writes(etcd_server: EtcdServer) -> None:
    put = rpc_pb2.PutResponse.FromString(etcdctl(etcd_server, "put", "-w", "protobuf", "k1", "v1"))
    etcdctl(etcd_server, "put", "k1", "v2")

    got = rpc_pb2.RangeResponse.FromString(etcdctl(etcd_server, "get", "-w", "protobuf", "k1"))
    assert got.count == 1
    [kv] = got.kvs
    assert (kv.key, kv.value, kv.version) == (b"k1", b"v2", 2)
    assert kv.create_revision == put.header.revision
    assert kv.mod_revision == got.header.revision == put.header.revision + 1

    members = rpc_pb2.MemberListResponse.FromString(
        etcdctl(etcd_server, "member", "list", "-w", "protobuf")
    )
    [member] = members.members
    assert member.ID == members.header.member_id == got.header.member_id
    assert member.clientURLs == [etcd_server.client_url]
    assert not member.isLearner
