"""The benchmark's progress bar: on stderr, and only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``count / total [=====>----] 42.00% 3s``, redrawn at most ten times a second."""

    width = 40

    def __init__(self, total: int | None, stream: TextIO | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty()
        self.total = total
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._done = 0

    def __call__(self, done: int) -> None:
        self._done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn_at < 0.1 and (self.total is None or done < self.total):
            return
        self._drawn_at = now
        self.stream.write("\r" + self.line(done, now - self.started))
        self.stream.flush()

    def line(self, done: int, elapsed: float) -> str:
        seconds = f"{int(elapsed)}s"
        if not self.total:
            return f"{done} {seconds}"
        filled = min(self.width, done * self.width // self.total)
        arrow = ">" if filled < self.width else ""
        bar = "=" * filled + arrow + "-" * (self.width - filled - len(arrow))
        return f"{done} / {self.total} [{bar}] {done * 100 / self.total:.2f}% {seconds}"

    def finish(self) -> None:
        if self.enabled and self._drawn_at:
            self.stream.write("\r" + self.line(self._done, time.monotonic() - self.started))
            self.stream.write("\n")
            self.stream.flush()
