"""python-etcd3's API on this library: migrating is one import line.

```python
from puregrpc_etcd import etcd3          # was: import etcd3

etcd = etcd3.client(host="127.0.0.1", port=2379)
etcd.put("/config/name", "MyApp")
value, meta = etcd.get("/config/name")
with etcd.lock("nightly", ttl=30):
    ...
```

The names, arguments and result shapes are python-etcd3's (its master branch, a superset of
0.12.0), including the submodules its users import (``etcdrpc``, ``exceptions``, ``utils``,
``events``, ``members``, ``leases``, ``locks``, ``transactions``, ``watch``). Underneath is the
library's blocking client (``puregrpc_etcd.sync``): no grpcio, and it works with any protobuf
runtime from 4.21 on. Where python-etcd3 falls short this module does better: watches resume
after a lost connection, auth tokens are renewed, the client moves to a working endpoint by
itself, and errors carry the server's message. The README lists every difference.
"""

from __future__ import annotations

from . import etcdrpc, events, exceptions, leases, locks, members, transactions, utils, watch
from ._results import Transactions
from .client import Endpoint, Etcd3Client, MultiEndpointEtcd3Client, client
from .exceptions import Etcd3Exception
from .leases import Lease
from .locks import Lock
from .members import Member

__version__ = "0.12.0"

__all__ = [
    "Endpoint",
    "Etcd3Client",
    "Etcd3Exception",
    "Lease",
    "Lock",
    "Member",
    "MultiEndpointEtcd3Client",
    "Transactions",
    "client",
    "etcdrpc",
    "events",
    "exceptions",
    "leases",
    "locks",
    "members",
    "transactions",
    "utils",
    "watch",
]
