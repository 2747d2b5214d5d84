"""``python -m bench.faces`` keeps working: every run of the table against a real etcd."""

from __future__ import annotations

import os
import sys

from puregrpc_etcd.testing import EtcdServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import faces  # noqa: E402  (the bench lives beside the package)


def test_every_run_gives_a_row(server: EtcdServer) -> None:
    medians = faces.measure(server.endpoint, calls=128, rounds=1)
    assert set(medians) == set(faces.contenders(128))
    for wall, cpu in medians.values():
        assert 0 < wall < 1
        assert cpu >= 0
    table = faces.table(medians)
    assert table.count("\n") == len(medians) + 1
    assert "| sync get_seq |" in table
