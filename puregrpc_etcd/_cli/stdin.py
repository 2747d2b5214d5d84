"""Standard input for the commands that read it (``put``'s value, ``txn``, passwords), the same
whether it is a pipe, a file, a terminal, empty (``</dev/null``) or closed (``<&-``, where
Python sets ``sys.stdin`` to None): a closed input reads as an empty one."""

from __future__ import annotations

import io
import sys
from contextlib import contextmanager
from typing import IO, Iterator


def read_all() -> bytes:
    """Everything on standard input, byte for byte; empty when it is closed or unreadable
    (a directory, a write-only descriptor), as Go's ``io.ReadAll`` error reads to etcdctl."""
    stdin = sys.stdin
    if stdin is None:
        return b""
    try:
        buffer = getattr(stdin, "buffer", None)
        if buffer is None:
            return stdin.read().encode("utf-8", "surrogateescape")
        return buffer.read()  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return b""


@contextmanager
def text_input() -> Iterator[IO[str]]:
    """Standard input as text read line by line (undecodable bytes kept as surrogates)."""
    stdin = sys.stdin
    buffer = getattr(stdin, "buffer", None)
    if stdin is None or buffer is None:
        yield stdin if stdin is not None else io.StringIO("")
        return
    stream = io.TextIOWrapper(buffer, errors="surrogateescape")
    try:
        yield stream
    finally:
        stream.detach()


def read_line() -> str:
    """One line of standard input without its line end; empty at the end or when closed."""
    stdin = sys.stdin
    if stdin is None:
        return ""
    try:
        return stdin.readline().rstrip("\n")
    except (OSError, ValueError):
        return ""


def is_terminal() -> bool:
    """Whether standard input is a terminal one can prompt on (False when closed)."""
    stdin = sys.stdin
    try:
        return stdin is not None and stdin.isatty()
    except (OSError, ValueError):
        return False
