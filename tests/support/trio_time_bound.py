"""A time bound on every trio test, so a hang fails that test alone and shows where its tasks wait;
a plugin the root ``tests/conftest.py`` loads.

pytest-timeout (``timeout`` in pyproject.toml) stays the backstop for sync tests and for code that
never yields; but its SIGALRM lands in trio's run loop, shows only that loop's stack, and leaves
trio's state behind so the next test fails too. Trio tests are bounded here first, from inside.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

# Real seconds (a test's autojump clock does not move it); below pytest-timeout's 300.
TRIO_TEST_TIMEOUT = float(os.environ.get("PUREGRPC_TRIO_TEST_TIMEOUT", "270"))


def _task_tree(task: trio.lowlevel.Task, depth: int = 0) -> list[str]:
    lines = [f"{'  ' * depth}task {task.name}"]
    for frame, lineno in task.iter_await_frames():
        code = frame.f_code
        lines.append(f"{'  ' * depth}  {code.co_filename}:{lineno} in {code.co_name}")
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            lines += _task_tree(child, depth + 1)
    return lines


def _bounded_run(async_fn: Callable[[], Awaitable[Any]], **run_kwargs: Any) -> Any:
    """``trio.run`` that cancels the test after TRIO_TEST_TIMEOUT and fails it with its tasks."""
    scope = trio.CancelScope()
    where: list[str] = []

    def expire() -> None:  # runs inside trio, from run_sync_soon
        where.extend(_task_tree(trio.lowlevel.current_root_task()))
        scope.cancel()

    async def bounded() -> Any:
        token = trio.lowlevel.current_trio_token()

        def from_timer_thread() -> None:
            try:
                token.run_sync_soon(expire)
            except trio.RunFinishedError:
                pass  # the test ended just now

        timer = threading.Timer(TRIO_TEST_TIMEOUT, from_timer_thread)
        timer.daemon = True
        timer.start()
        try:
            with scope:
                return await async_fn()
        finally:
            timer.cancel()
        # Only a cancellation by expire() ends the scope without a return or an exception.
        pytest.fail(
            f"trio test timed out after {TRIO_TEST_TIMEOUT:g} s; its tasks were at:\n"
            + "\n".join(where),
            pytrace=False,
        )

    return trio.run(bounded, **run_kwargs)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pytest-trio's trio mode has marked the async tests; the first trio marker chooses the runner.
    for item in items:
        if item.get_closest_marker("trio") is not None:
            item.add_marker(pytest.mark.trio(run=_bounded_run), append=False)
