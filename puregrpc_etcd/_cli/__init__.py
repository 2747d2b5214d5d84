"""The pieces of the ``puregrpc-etcd`` command; ``puregrpc_etcd.cli.run`` is its entry point.

Parsing, output formats, the txn reader and the subcommands each live in their own module.
"""

from __future__ import annotations
