"""puregrpc_etcd: an etcd v3 client for trio that speaks gRPC over HTTP/2 itself.

The public names of ../shared/design/API.md live here and nowhere else.
"""

from __future__ import annotations

__version__ = "0.1.0"
