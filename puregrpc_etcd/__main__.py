"""Entry point of the ``puregrpc-etcd`` command (``python -m puregrpc_etcd``)."""

from __future__ import annotations

import sys

from puregrpc_etcd import _entry


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C while starting (importing the command, parsing) ends it as etcdctl's: one line, 130.
    if _entry.end_startup():
        return _interrupted()
    try:
        from puregrpc_etcd.cli import run

        return run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        return _interrupted()


def _interrupted() -> int:
    print("Error: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
    raise SystemExit(main())
