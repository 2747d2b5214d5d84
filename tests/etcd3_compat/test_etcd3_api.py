"""``puregrpc_etcd.etcd3`` beyond python-etcd3's own suite: the whole public surface of
python-etcd3 (master and 0.12.0), its error mapping, its result shapes, and where this module
does better (watches that resume after a restart, tokens that are renewed)."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import platform
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import trustme

from puregrpc_etcd import errors, etcd3, sync
from puregrpc_etcd._proto import kv_pb2
from puregrpc_etcd.etcd3 import etcdrpc, exceptions
from puregrpc_etcd.grpc import StatusCode
from puregrpc_etcd.testing import EtcdServer

# The public names of python-etcd3's master branch (kragniz/python-etcd3 e58a899), module by
# module and class by class, minus its grpcio stubs and channel (README: what differs).
MASTER_SURFACE = {
    "": ["Endpoint", "Etcd3Client", "Etcd3Exception", "Lease", "Lock", "Member",
         "MultiEndpointEtcd3Client", "Transactions", "client", "etcdrpc"],
    "client": ["Alarm", "Endpoint", "Etcd3Client", "EtcdTokenCallCredentials", "KVMetadata",
               "MultiEndpointEtcd3Client", "Status", "Transactions", "client"],
    "exceptions": ["ConnectionFailedError", "ConnectionTimeoutError", "Etcd3Exception",
                   "InternalServerError", "NoServerAvailableError", "PreconditionFailedError",
                   "RevisionCompactedError", "WatchTimedOut"],
    "utils": ["lease_to_id", "prefix_range_end", "response_to_event_iterator", "to_bytes"],
    "events": ["DeleteEvent", "Event", "PutEvent", "new_event"],
    "transactions": ["BaseCompare", "Create", "Delete", "Get", "Mod", "Put", "Txn", "Value",
                     "Version"],
    "watch": ["Watch", "WatchResponse", "Watcher"],
    "leases": ["Lease"],
    "locks": ["Lock"],
    "members": ["Member"],
}  # fmt: skip
CLIENT_METHODS = [
    "add_member", "add_watch_callback", "add_watch_prefix_callback", "cancel_watch", "close",
    "compact", "create_alarm", "defragment", "delete", "delete_prefix", "disarm_alarm",
    "endpoint_in_use", "get", "get_all", "get_all_response", "get_lease_info", "get_prefix",
    "get_prefix_response", "get_range", "get_range_response", "get_response",
    "get_secure_creds", "get_watcher", "hash", "lease", "list_alarms", "lock", "members", "put",
    "put_if_not_exists", "refresh_lease", "remove_member", "replace", "revoke_lease", "snapshot",
    "status", "transaction", "update_member", "watch", "watch_once", "watch_once_response",
    "watch_prefix", "watch_prefix_once", "watch_prefix_once_response", "watch_prefix_response",
    "watch_response", "watcher",
]  # fmt: skip

_SURFACE_OF_INSTALLED = r"""
import importlib, json
mod = importlib.import_module("etcd3")
out = {"": sorted(n for n in dir(mod) if not n.startswith("_"))}
for sub in ["exceptions", "utils", "events", "members", "leases", "locks", "transactions",
            "watch"]:
    m = importlib.import_module("etcd3." + sub)
    out[sub] = sorted(n for n, v in vars(m).items()
                      if not n.startswith("_") and getattr(v, "__module__", "") == m.__name__)
for name in ["Etcd3Client", "Lock", "Lease", "Member", "Transactions"]:
    out[name] = sorted(n for n in dir(getattr(mod, name)) if not n.startswith("_"))
print(json.dumps(out))
"""


def test_master_surface_is_all_here():
    for module, names in MASTER_SURFACE.items():
        target = etcd3 if not module else sys.modules[f"puregrpc_etcd.etcd3.{module}"]
        assert [n for n in names if not hasattr(target, n)] == [], module
    for cls in (etcd3.Etcd3Client, etcd3.MultiEndpointEtcd3Client):
        assert [n for n in CLIENT_METHODS if not hasattr(cls, n)] == []
    # ``import etcd3.etcdrpc.kv_pb2`` works as a submodule import.
    assert importlib.import_module("puregrpc_etcd.etcd3.etcdrpc.kv_pb2").Event is kv_pb2.Event


@pytest.mark.skipif(
    platform.python_implementation() != "CPython",
    reason="python-etcd3 needs grpcio, which has no PyPy wheel",
)
def test_surface_of_python_etcd3_0_12_is_all_here():
    """Every public name of the python-etcd3 release on PyPI exists here too."""
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    out = subprocess.run(
        [sys.executable, "-c", _SURFACE_OF_INSTALLED],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    theirs = json.loads(out)
    theirs[""].remove("absolute_import")  # a __future__ import of its Python 2 days
    for module, names in theirs.items():
        if module[:1].isupper():  # a class
            target = getattr(etcd3, module)
        elif module:
            target = sys.modules[f"puregrpc_etcd.etcd3.{module}"]
        else:
            target = etcd3
        assert [n for n in names if not hasattr(target, n)] == [], module


_SIGNATURES_OF_INSTALLED = r"""
import importlib, inspect, json
out = {}
def params(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [[p.name, p.kind.name, None if p.default is p.empty else repr(p.default)]
            for p in sig.parameters.values()]
for sub in ["client", "exceptions", "utils", "events", "members", "leases", "locks",
            "transactions", "watch"]:
    m = importlib.import_module("etcd3." + sub)
    for n, v in vars(m).items():
        if n.startswith("_") or getattr(v, "__module__", "") != m.__name__:
            continue
        if inspect.isclass(v):
            for a in ["__init__"] + [a for a in dir(v) if not a.startswith("_")]:
                f = inspect.getattr_static(v, a)
                if isinstance(f, (staticmethod, classmethod)):
                    f = f.__func__
                if inspect.isfunction(f):
                    out[sub + ":" + n + "." + a] = params(f)
        elif inspect.isfunction(v):
            out[sub + ":" + n] = params(v)
print(json.dumps(out))
"""


def _accepts_every_call_of(ours: list, theirs: list) -> str:
    """'' if a callable with parameters ``ours`` accepts every call that one with ``theirs``
    accepts (same positions, names and defaults; extra parameters optional), else why not."""
    by_name = {p[0]: p for p in ours}
    var_kw = any(p[1] == "VAR_KEYWORD" for p in ours)
    positional = [p for p in ours if p[1] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]
    for index, (name, kind, default) in enumerate(theirs):
        if kind in ("VAR_POSITIONAL", "VAR_KEYWORD"):
            if not any(p[1] == kind for p in ours):
                return f"no {kind} for {name}"
            continue
        in_place = index < len(positional) and positional[index][0] == name
        if kind == "POSITIONAL_OR_KEYWORD" and not in_place:
            return f"{name} is not positional argument {index}"
        mine = by_name.get(name)
        if mine is None:
            if not var_kw:
                return f"no {name}"
        elif mine[2] != default:
            return f"{name}: default {mine[2]} instead of {default}"
    named = {p[0] for p in theirs}
    for name, kind, default in ours:
        if name not in named and kind not in ("VAR_POSITIONAL", "VAR_KEYWORD") and default is None:
            return f"extra required {name}"
    return ""


# python-etcd3 builds its watcher on a grpcio stub (here the client makes it); its
# ``Watch.iterator`` method is shadowed on every instance by the attribute of that name.
_SIGNATURES_NOT_KEPT = {"watch:Watcher.__init__", "watch:Watch.iterator"}


@pytest.mark.skipif(
    platform.python_implementation() != "CPython",
    reason="python-etcd3 needs grpcio, which has no PyPy wheel",
)
def test_signatures_of_python_etcd3_0_12_are_kept():
    """Every public function and method of the python-etcd3 release on PyPI takes here the
    arguments it takes there: same positions, names and defaults."""
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    out = subprocess.run(
        [sys.executable, "-c", _SIGNATURES_OF_INSTALLED],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    theirs = json.loads(out)
    assert len(theirs) > 90
    problems = {}
    for path, params in theirs.items():
        if path in _SIGNATURES_NOT_KEPT or params is None:
            continue
        module, _, dotted = path.partition(":")
        target: object = sys.modules[f"puregrpc_etcd.etcd3.{module}"]
        for part in dotted.split("."):
            target = getattr(target, part)
        signature = inspect.signature(target)
        ours = [
            [p.name, p.kind.name, None if p.default is p.empty else repr(p.default)]
            for p in signature.parameters.values()
        ]
        why = _accepts_every_call_of(ours, params)
        if why:
            problems[path] = why
    assert problems == {}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (errors.UnavailableError(StatusCode.UNAVAILABLE, "gone"), exceptions.ConnectionFailedError),
        (errors.ConnectionFailedError(StatusCode.UNAVAILABLE), exceptions.ConnectionFailedError),
        (errors.DeadlineExceededError(StatusCode.DEADLINE_EXCEEDED),
         exceptions.ConnectionTimeoutError),
        (errors.RpcError(StatusCode.INTERNAL, "boom"), exceptions.InternalServerError),
        (errors.RpcError(StatusCode.FAILED_PRECONDITION), exceptions.PreconditionFailedError),
    ],
)  # fmt: skip
def test_the_four_codes_python_etcd3_maps(error, expected):
    translated = exceptions.translate(error)
    assert type(translated) is expected
    assert translated.__cause__ is error


def test_other_errors_stay_the_librarys():
    error = errors.PermissionDeniedError(StatusCode.PERMISSION_DENIED, "no")
    assert exceptions.translate(error) is error
    compacted = errors.CompactedError(StatusCode.OUT_OF_RANGE, "compacted", compact_revision=7)
    translated = exceptions.translate(compacted)
    assert isinstance(translated, exceptions.RevisionCompactedError)
    assert translated.compacted_revision == 7


def test_bad_arguments_fail_before_any_io():
    client = etcd3.client(host="127.0.0.1", port=1)  # nothing listens there: never contacted
    with pytest.raises(ValueError, match="sort order"):
        client.get("k", sort_order="sideways")
    with pytest.raises(TypeError, match="str or bytes"):
        client.put("k", 42)
    with pytest.raises(TypeError, match="Don't use"):
        client.get_prefix("p", range_end="q")
    with pytest.raises(ValueError, match="both user and password"):
        etcd3.client(user="root")
    with pytest.raises(ValueError, match="ca_cert"):
        etcd3.client(ca_cert="x.crt", cert_key="k.key")


@pytest.fixture
def server() -> Iterator[EtcdServer]:
    with EtcdServer() as started:
        yield started


def _client(server: EtcdServer, **options) -> etcd3.Etcd3Client:
    host, port = server.endpoint.rsplit(":", 1)
    return etcd3.client(host=host, port=int(port), timeout=10, **options)


def test_result_shapes(server):
    with _client(server) as client:
        assert isinstance(client.put("k", "v", prev_kv=True), etcdrpc.PutResponse)
        assert client.put("k", "w", prev_kv=True).prev_kv.value == b"v"
        assert isinstance(client.get_response("k"), etcdrpc.RangeResponse)
        value, meta = client.get("k")
        assert value == b"w"
        assert meta.key == b"k"
        assert meta.version == 2
        assert isinstance(meta.response_header, etcdrpc.ResponseHeader)
        assert meta.response_header.revision == meta.mod_revision
        assert isinstance(client.delete("k", return_response=True), etcdrpc.DeleteRangeResponse)
        lease = client.lease(30)
        client.put("leased", "x", lease=lease)
        info = client.get_lease_info(lease.id)
        assert isinstance(info, etcdrpc.LeaseTimeToLiveResponse)
        assert list(info.keys) == [b"leased"]
        assert info.grantedTTL == 30
        ok, responses = client.transaction(
            compare=[client.transactions.version("leased") > 0],
            success=[client.transactions.get("leased"), client.transactions.delete("leased")],
            failure=[],
        )
        assert ok is True
        assert [(v, m.key) for v, m in responses[0]] == [(b"x", b"leased")]
        assert isinstance(responses[1], etcdrpc.ResponseOp)
        assert responses[1].response_delete_range.deleted == 1


def test_watch_resumes_after_a_restart(server):
    """python-etcd3's watch ends with an error when its connection breaks; here the engine
    resumes it from the next revision, and the callback sees every event once."""
    with _client(server) as client:
        responses: queue.Queue[object] = queue.Queue()
        watch_id = client.add_watch_prefix_callback("/svc/", responses.put)
        client.put("/svc/a", "1")
        server.restart()
        client.put("/svc/b", "2")  # the engine reconnects for this put as well
        seen = []
        deadline = time.monotonic() + 30
        while len(seen) < 2 and time.monotonic() < deadline:
            response = responses.get(timeout=max(deadline - time.monotonic(), 0.1))
            assert not isinstance(response, Exception), response
            seen.extend((e.key, e.value) for e in response.events)
        client.cancel_watch(watch_id)
        assert seen == [(b"/svc/a", b"1"), (b"/svc/b", b"2")]


def test_expired_token_is_renewed():
    """python-etcd3 authenticates once and fails when the token expires; here it is renewed."""
    with EtcdServer(args=["--auth-token-ttl", "2"]) as server:
        with sync.connect(server.endpoints) as admin:
            admin.auth.user_add("root", "root-pw-Zq81")
            admin.auth.user_grant_role("root", "root")
            admin.auth.enable()
        with _client(server, user="root", password="root-pw-Zq81") as client:
            client.put("/k", "before")
            time.sleep(3.5)  # past the token's TTL (simple tokens: TTL + ~1 s after last use)
            assert client.get("/k")[0] == b"before"
            client.put("/k", "after")
            assert client.get("/k")[0] == b"after"


def test_failover_between_endpoints(server):
    """With ``failover=True`` a dead endpoint among the others costs no failed call."""
    host, port = server.endpoint.rsplit(":", 1)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    endpoints = [
        etcd3.Endpoint("127.0.0.1", dead.getsockname()[1], secure=False),
        etcd3.Endpoint(host, int(port), secure=False),
    ]
    try:
        for _ in range(4):  # whichever endpoint it picks first
            with etcd3.MultiEndpointEtcd3Client(endpoints, timeout=10, failover=True) as client:
                client.put("/k", "v")
                assert client.get("/k")[0] == b"v"
    finally:
        dead.close()


def test_tls_with_client_certificate(tmp_path):
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("client.example", common_name="root")
    paths = {name: str(tmp_path / name) for name in ("ca", "srv", "srv-key", "cli", "cli-key")}
    ca.cert_pem.write_to_path(paths["ca"])
    server_cert.cert_chain_pems[0].write_to_path(paths["srv"])
    server_cert.private_key_pem.write_to_path(paths["srv-key"])
    client_cert.cert_chain_pems[0].write_to_path(paths["cli"])
    client_cert.private_key_pem.write_to_path(paths["cli-key"])
    args = ["--cert-file", paths["srv"], "--key-file", paths["srv-key"], "--client-cert-auth",
            "--trusted-ca-file", paths["ca"]]  # fmt: skip
    with EtcdServer(scheme="https", args=args) as server:
        host, port = server.endpoint.rsplit(":", 1)
        certs = {"ca_cert": paths["ca"], "cert_key": paths["cli-key"], "cert_cert": paths["cli"]}
        with etcd3.client(host=host, port=int(port), timeout=10, **certs) as client:
            assert client.uses_secure_channel is True
            client.put("/tls", "yes")
            assert client.get("/tls")[0] == b"yes"
        # Without the client certificate the server refuses the handshake.
        no_cert = etcd3.client(host=host, port=int(port), timeout=5, ca_cert=paths["ca"])
        with no_cert, pytest.raises(exceptions.ConnectionFailedError) as failed:
            no_cert.get("/tls")
        assert isinstance(failed.value.__cause__, errors.ConnectionFailedError)


def test_lock_waits_across_a_compaction(server):
    """python-etcd3 watches from the holder's revision + 1 and raises RevisionCompactedError
    when that history is compacted (a lock held for long, auto-compaction on); here the
    waiter watches from where its transaction saw the lock held instead."""
    with _client(server) as client:
        holder = client.lock("compacted", ttl=30)
        assert holder.acquire(timeout=5)
        for index in range(5):
            client.put(f"/other/{index}", "x")
        client.compact(client.put("/other/last", "x").header.revision)
        waiter = client.lock("compacted", ttl=30)
        assert waiter._try_acquire() is False  # the holder's revision + 1 is compacted now
        release = threading.Timer(0.5, holder.release)
        release.start()
        try:
            waiter._wait_delete_event(10)
            assert client.get(holder.key)[0] is None  # it returned for the release
        finally:
            release.join()
        assert waiter.acquire(timeout=0) is True


def test_positional_arguments_as_python_etcd3_takes_them(server):
    """``get_all_response(sort_order, sort_target, keys_only)`` takes them positionally in
    python-etcd3 (master and 0.12.0), and 0.12.0's ``get_response(key, serializable)``."""
    with _client(server) as client:
        client.put("/p/a", "1")
        client.put("/p/b", "2")
        reply = client.get_all_response("descend", "key", True)
        assert [kv.key for kv in reply.kvs] == [b"/p/b", b"/p/a"]
        assert [kv.value for kv in reply.kvs] == [b"", b""]  # keys_only
        assert client.get_response("/p/a", True).kvs[0].value == b"1"
    assert etcd3.utils.increment_last_byte(byte_string=b"ab") == b"ac"  # 0.12.0's name


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: connections are refused
    return port


@pytest.mark.parametrize("method", ["add_watch_callback", "watch", "watch_once"])
def test_watch_when_etcd_is_down_raises_connection_failed(method):
    """python-etcd3 raises ``ConnectionFailedError`` at once when no member can be reached for
    a new watch (as for any other call), not ``WatchTimedOut`` after the client's timeout (or,
    without one, never)."""
    calls = {
        "add_watch_callback": lambda c: c.add_watch_callback("/k", lambda response: None),
        "watch": lambda c: c.watch("/k"),
        "watch_once": lambda c: c.watch_once("/k", timeout=30),
    }
    with etcd3.client(host="127.0.0.1", port=_closed_port(), timeout=10) as client:
        started = time.monotonic()
        with pytest.raises(exceptions.ConnectionFailedError) as failed:
            calls[method](client)
        assert time.monotonic() - started < 8
        assert isinstance(failed.value.__cause__, errors.ConnectionFailedError)


def test_every_endpoint_down_with_failover_is_no_server_available():
    """With ``failover=True`` python-etcd3 raises ``NoServerAvailableError`` once every endpoint
    has failed; here one call tries them all, so that call says it. Without failover each call
    raises ``ConnectionFailedError`` (python-etcd3's master raises ``ValueError("Trying to use
    a failed node")`` for 300 s after the first; this client tries again every time)."""
    endpoints = [etcd3.Endpoint("127.0.0.1", _closed_port(), secure=False) for _ in range(2)]
    with etcd3.MultiEndpointEtcd3Client(endpoints, timeout=10, failover=True) as client:
        for call in (lambda: client.get("/k"), lambda: client.watch("/k")):
            with pytest.raises(exceptions.NoServerAvailableError) as failed:
                call()
            assert isinstance(failed.value.__cause__, errors.ConnectionFailedError)
    with etcd3.MultiEndpointEtcd3Client(endpoints[:1], timeout=10) as client:
        for _ in range(2):
            with pytest.raises(exceptions.ConnectionFailedError):
                client.put("/k", "v")
