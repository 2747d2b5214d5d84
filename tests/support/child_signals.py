"""Ctrl-C reaches the processes the tests start, however pytest was started.

A shell starts a background job (``cmd &`` without job control: a CI script, ``nohup``) with
SIGINT ignored, and every child inherits that: the tests that interrupt a child (the command's
``watch``, a blocked face call, etcdctl) would wait for an end that never comes. A handler
installed here makes a started program begin with SIGINT's default (an exec resets handled
signals, not ignored ones)."""

from __future__ import annotations

import signal

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
