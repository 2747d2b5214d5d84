"""The demo runs to completion against its own throwaway etcd and leaves nothing behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from puregrpc_etcd import _etcd_server
from puregrpc_etcd.cli import run


@pytest.mark.slow
def test_demo_tours_every_feature_and_cleans_up(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["demo", "--pause", "0"]) == 0
    out = capsys.readouterr().out
    titles = re.findall(r"^== (\d)\. ", out, re.MULTILINE)
    assert titles == [str(n) for n in range(1, 10)]
    for evidence in (
        "get_json -> db1:5432",
        "discovered: ['10.0.0.1:8080', '10.0.0.2:8080']",
        "discovered: []",
        "log_level=warning",
        "worker 3 releases it",
        "the leader is now node-b",
        "CompactedError",
        "balances: demo/accounts/alice=55, demo/accounts/bob=50",
        "the heartbeat key expired",
        "(lease revoked, not left to expire): True",
    ):
        assert evidence in out
    workdir = re.search(r"data in (\S+)\)", out)
    assert workdir is not None
    assert f"{workdir.group(1)} removed: True" in out
    # node-a crashed: it never stepped down, node-b took over when its lease ran out.
    assert "node-a steps down" not in out
    assert re.search(r"node-a's lease expired, \d+\.\ds after it died", out)
    # The three workers held the lock one after another, never two at once.
    holders = re.findall(r"worker (\d) (holds|releases)", out)
    assert [verb for _, verb in holders] == ["holds", "releases"] * 3


def test_a_demo_whose_etcd_cannot_start_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An etcd that cannot start (here a binary the kernel will not run) is cleaned up like
    one that ran: its directory is removed (the demo started it outside its clean-up, and left
    one behind per failed start)."""
    corrupt = tmp_path / "etcd"
    corrupt.write_bytes(b"not a program")
    corrupt.chmod(0o755)
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setattr(_etcd_server, "temp_root", lambda: str(root))
    assert run(["demo", "--pause", "0", f"--binary={corrupt}"]) == 1
    assert "Exec format error" in capsys.readouterr().err
    assert list(root.iterdir()) == []
