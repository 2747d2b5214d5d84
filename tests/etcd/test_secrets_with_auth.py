"""Secrets against a real etcd with auth on: no token outlives its client in a module-level
cache, reprs show neither password nor token, loopback connections never warn about plaintext,
and a snapshot's temporary file is created anew (mode 0600), never through a planted symlink."""

from __future__ import annotations

import gc
import os
import stat
import sys
import types
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd._credentials import PlaintextCredentialsWarning
from puregrpc_etcd.testing import EtcdServer

ROOT_PASSWORD = "root-pw-Hq28Secret"


async def set_up_auth(endpoints: list[str]) -> None:
    async with etcd.connect(endpoints) as client:
        await client.auth.user_add("root", ROOT_PASSWORD)
        await client.auth.user_grant_role("root", "root")
        await client.auth.enable()


@pytest.fixture(scope="module")
def server() -> Iterator[EtcdServer]:
    with EtcdServer() as started:
        trio.run(set_up_auth, started.endpoints)
        yield started


def connect_as_root(endpoints: list[str]) -> etcd.Client:
    return etcd.connect(endpoints, username="root", password=ROOT_PASSWORD)  # type: ignore[return-value]


def _ours(code: type | types.FunctionType) -> bool:
    return str(getattr(code, "__module__", "")).split(".")[0] in ("puregrpc_etcd", "hpack")


_TEST_HELPER_MODULES = {
    "puregrpc_etcd.testing",
    "puregrpc_etcd._etcd_server",
    "puregrpc_etcd._etcd_binary",
}


def strings_reachable_from_package_globals(needle: str) -> list[str]:
    """Where ``needle`` is found (as or inside a str, or as bytes) among everything reachable
    from the globals of the package's modules, without going through other modules."""
    needle_bytes = needle.encode()
    modules = [module for module in list(sys.modules.values()) if module is not None]
    # A module's dunder names (__loader__, __spec__, __builtins__) lead to the import system, not
    # to what the package holds: puregrpc_etcd.testing, a pytest plugin, is loaded by pytest's
    # assertion rewriter, whose session reaches the running test and the client it holds.
    # The test helper's modules (the pytest plugin and the etcd processes it runs) are left out
    # too: pytest holds their fixtures, and through them its session and the running test.
    roots: list[object] = [
        [value for name, value in module.__dict__.items() if not name.startswith("__")]
        for module in modules
        if module.__name__.split(".")[0] in ("puregrpc_etcd", "hpack")
        and module.__name__ not in _TEST_HELPER_MODULES
    ]
    # Functions lead to their modules' globals: other modules are not walked (trio's, say,
    # reach the running test and what it holds).
    seen = {id(module.__dict__) for module in modules}
    # Running frames are the program, not state the package keeps: on PyPy a thread-local's
    # referents lead to its thread's frame stack, and from the running test to its client.
    # (A frame kept by a stored traceback has returned, and is still walked.)
    for frame in sys._current_frames().values():
        running: types.FrameType | None = frame
        while running is not None:
            seen.add(id(running))
            running = running.f_back
    stack: list[object] = roots
    found: list[str] = []
    for _ in range(2_000_000):  # bounded: the package's object graph is far smaller
        if not stack:
            break
        item = stack.pop()
        if isinstance(item, str):
            if needle in item:
                found.append(repr(item)[:80])
            continue
        if isinstance(item, (bytes, bytearray)):
            if needle_bytes in item:
                found.append(repr(item)[:80])
            continue
        for referent in gc.get_referents(item):
            if type(referent) in weakref.ProxyTypes or isinstance(referent, weakref.ref):
                # A weak reference keeps nothing alive; PyPy's get_referents may hand out what
                # it points to (or a dead proxy).
                continue
            if isinstance(referent, types.ModuleType) or id(referent) in seen:
                continue
            if isinstance(referent, (type, types.FunctionType)) and not _ours(referent):
                continue  # other libraries' code and its caches (typing's reach everything)
            seen.add(id(referent))
            stack.append(referent)
    else:
        pytest.fail("the walk over the package's globals did not end")
    return found


async def test_no_token_outlives_its_client(server: EtcdServer) -> None:
    async with connect_as_root(server.endpoints) as client:
        await client.put("secrets/token", "in use")
        token = client._caller.token
        assert token
        for text in (repr(client), str(client), repr(client.namespace("ns/"))):
            assert ROOT_PASSWORD not in text
            assert token not in text
        # Reversed, so that this frame holds no copy of the token the walk could find.
        reversed_token = token[::-1]
        del token
        assert strings_reachable_from_package_globals(reversed_token[::-1]) == []
    assert client._caller.token is None
    assert all(value != reversed_token[::-1] for _, value in client._caller.metadata)
    del client
    gc.collect()
    assert strings_reachable_from_package_globals(reversed_token[::-1]) == []
    assert strings_reachable_from_package_globals(ROOT_PASSWORD) == []


async def test_loopback_never_warns_about_plaintext(server: EtcdServer) -> None:
    port = server.client_port
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlaintextCredentialsWarning)
        for endpoints in ([f"127.0.0.1:{port}"], [f"http://localhost:{port}"]):
            async with connect_as_root(endpoints) as client:
                assert await client.get_value("secrets/none") is None
                await client.maintenance.status(f"127.0.0.1:{port}")


async def snapshot(server: EtcdServer, target: Path) -> int:
    async with connect_as_root(server.endpoints) as client:
        return await client.maintenance.snapshot(target)


def test_snapshot_never_follows_a_planted_symlink(server: EtcdServer, tmp_path: Path) -> None:
    target = tmp_path / "backup.db"
    partial = Path(f"{target}.part")
    victim = tmp_path / "victim"
    victim.write_bytes(b"not yours to overwrite")
    victim.chmod(0o644)
    os.symlink(victim, partial)
    size = trio.run(snapshot, server, target)
    assert victim.read_bytes() == b"not yours to overwrite"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not target.is_symlink()
    assert target.stat().st_size == size
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not os.path.lexists(partial)
    # A dangling one must not make the snapshot create a file where it points either.
    elsewhere = tmp_path / "elsewhere"
    os.symlink(elsewhere, partial)
    assert trio.run(snapshot, server, target) > 0
    assert not os.path.lexists(elsewhere)
    assert not target.is_symlink()


def test_snapshot_replaces_a_readable_leftover_with_a_private_file(
    server: EtcdServer, tmp_path: Path
) -> None:
    target = tmp_path / "backup.db"
    partial = Path(f"{target}.part")
    partial.write_bytes(b"leftover of a snapshot that died")
    partial.chmod(0o644)
    old_umask = os.umask(0)
    try:
        trio.run(snapshot, server, target)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not os.path.lexists(partial)
