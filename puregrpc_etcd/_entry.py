"""Ctrl-C while the ``puregrpc-etcd`` command starts: no traceback; and no cyclic garbage
collection while it imports.

Importing the package takes a good part of a second on a slow machine, and Python's own handler
would print a traceback from whichever import Ctrl-C lands in. When (and only when) the process
was started as the command (the ``puregrpc-etcd`` script, or ``python -m puregrpc_etcd`` on
Python 3.10+, which keeps the command line in ``sys.orig_argv``), the package's first import
here notes a Ctrl-C instead; ``__main__.main`` then hands Ctrl-C back to Python and exits as
interrupted. A program that imports the library is left alone.

The command also pauses the cyclic garbage collector from here until its modules are imported
(``cli.run`` calls ``resume_collector`` before a command starts its event loop): importing
trio, protobuf and the client makes thousands of long-lived objects, and the collections they
set off found nothing to free but took a tenth of a one-shot ``get``.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import FrameType

# No other import here: on PyPy even ``threading`` takes long enough for Ctrl-C to land in it.

_interrupted = False
_collector_paused = False


def _started_as_command() -> bool:
    if sys.argv and os.path.basename(sys.argv[0]) == "puregrpc-etcd":
        return True
    words = list(getattr(sys, "orig_argv", []))  # Python 3.10+
    return any(a == "-m" and b == "puregrpc_etcd" for a, b in zip(words, words[1:]))


def _note_interrupt(signum: int, frame: FrameType | None) -> None:
    global _interrupted
    _interrupted = True


def guard_startup() -> None:
    global _collector_paused
    if not _started_as_command():
        return
    if gc.isenabled():
        gc.disable()
        _collector_paused = True
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        try:
            signal.signal(signal.SIGINT, _note_interrupt)
        except ValueError:  # not the main thread: not a command's start
            pass


def end_startup() -> bool:
    """Give Ctrl-C back to Python (KeyboardInterrupt); True if one came during start-up."""
    if signal.getsignal(signal.SIGINT) is _note_interrupt:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return _interrupted


def resume_collector() -> None:
    """Turn the garbage collector back on if the command's start paused it."""
    global _collector_paused
    if _collector_paused:
        _collector_paused = False
        gc.enable()


guard_startup()
