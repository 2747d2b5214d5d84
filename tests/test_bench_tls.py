"""``python -m bench.tls`` keeps working: one etcd serving TLS and plaintext, our worker over
both, grpcio's aio channel over TLS, and the table of ratios."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import tls as bench_tls  # noqa: E402  (the bench lives beside the package)
from bench.__main__ import Contender, record, run_one  # noqa: E402


def test_get_over_tls_and_plaintext_and_the_table(tmp_path: Path) -> None:
    server, tls_url, plain = bench_tls.start_etcd(str(tmp_path), shared_http=False)
    found = [
        Contender("ours CPython plain", sys.executable, ["bench.worker_ours"]),
        Contender("ours CPython TLS", sys.executable, ["bench.worker_ours"]),
    ]
    if platform.python_implementation() == "CPython":  # grpcio has no PyPy wheels
        found.append(
            Contender("grpcio CPython TLS", sys.executable, ["bench.worker_peers", "grpcio"])
        )
    try:
        for contender in found:
            endpoint = tls_url if contender.name.endswith("TLS") else plain
            result = run_one(contender, "get_seq", endpoint, seconds=0.3, first=0, warmup=0.1)
            assert result is not None, contender.name
            assert result["value"] > 0
            record(contender, "get_seq", result, 0, 1.0)
    finally:
        server.close()  # type: ignore[attr-defined]
    table = bench_tls.table(found)
    assert "| get_seq |" in table
    assert "ours CPython TLS vs ours CPython plain" in table
    if len(found) == 3:
        assert "ours CPython TLS vs grpcio CPython TLS" in table


def test_a_tls_endpoint_for_the_peers_names_its_ca() -> None:
    from bench.worker_peers import _address

    assert _address("127.0.0.1:2379") == ("127.0.0.1", 2379, None)
    assert _address("etcds://127.0.0.1:2379/?cacert=/ca.pem") == ("127.0.0.1", 2379, "/ca.pem")
    with pytest.raises(SystemExit):
        _address("etcds:///?cacert=/ca.pem")
