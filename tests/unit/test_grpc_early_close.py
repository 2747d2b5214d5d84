"""A server that ends a stream before we half-closed must cost that call only.

Go servers (etcd) end such a stream with its trailers and then RST_STREAM(NO_ERROR), often in one
read. With h2 as the engine, our own reset of the already-closed stream raised and took the whole
connection down with every other call; this pins the behaviour.
"""

from __future__ import annotations

from grpc_support import NO_ERROR, OK_HEADERS, ServerPeer, connect, start

from puregrpc_etcd.grpc import StatusCode


def test_trailers_and_reset_in_one_read_before_half_close_fail_no_other_call() -> None:
    server = ServerPeer()
    protocol = connect(server)
    call = start(protocol, payload=None)
    other = start(protocol, payload=None)
    server.parse(protocol.data_to_send())
    protocol.receive_data(
        server.headers(1, OK_HEADERS) + server.trailers(1) + server.rst(1, NO_ERROR)
    )
    assert call.code is StatusCode.OK
    assert protocol.failure is None
    assert other.code is None
