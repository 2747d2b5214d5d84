"""python-etcd3's ``etcd3.etcdrpc``: etcd's protobuf messages and enums.

These are the library's own generated modules (``puregrpc_etcd._proto``), so a message made
here is the message the client sends. ``etcd3.etcdrpc.rpc_pb2``, ``kv_pb2`` and ``auth_pb2``
import as submodules too. python-etcd3's grpcio stubs (``KVStub``, ``WatchStub``, ...) are not
here: this package has no grpcio; use the client's methods, or ``puregrpc_etcd.grpc`` for raw
calls.
"""

from __future__ import annotations

import sys

from puregrpc_etcd._proto import auth_pb2, kv_pb2, rpc_pb2
from puregrpc_etcd._proto.rpc_pb2 import *  # noqa: F403 - python-etcd3 exports them all

for _module in (auth_pb2, kv_pb2, rpc_pb2):
    sys.modules.setdefault(f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}", _module)
del _module
