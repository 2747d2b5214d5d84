"""Subprocess scenarios of the faces' tests (Ctrl-C, fork, interpreter exit), in tests/faces and
tests/faults."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

#: Bound on a subprocess scenario (start, connect, act, exit): generous for a loaded machine.
SCRIPT_TIMEOUT = 60.0


def start_script(source: str, *args: str) -> subprocess.Popen[str]:
    """Run ``source`` in a fresh interpreter (this one), with pipes for its output."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )
