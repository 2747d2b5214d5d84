"""A user's ``mypy --strict`` sees the types of keys and values (``_keys.KeyLike``): a key or
value that is not str or bytes-like is a type error before it is a ``TypeError`` at run time.
And it sees each face's own types: values from the blocking face, awaitables from the asyncio
face, each face's own lock, the trio results and events through both."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import puregrpc_etcd

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None, reason="mypy is installed on CPython only"
)

# Each line ending in "# error" must be reported, and no other line.
SNIPPET = """\
from collections.abc import Awaitable
from typing import Optional

from typing_extensions import assert_type

import puregrpc_etcd as etcd
from puregrpc_etcd import aio, sync


async def main(client: etcd.Client) -> None:
    await client.put(42, None)  # error
    await client.put("k", 1.5)  # error
    await client.get(b"k", range_end=3)  # error
    await client.delete(object())  # error
    client.namespace(7)  # error
    etcd.Op.put("k", 1)  # error
    etcd.Compare.value(7) == b"x"  # error
    await client.put("k", "v")
    await client.put(b"k", bytearray(b"v"), prev_kv=True)
    await client.put(b"k", None, ignore_value=True)
    await client.get("k", prefix=True)
    await client.namespace("app/").get_value(memoryview(b"k"))
    etcd.Op.delete("k")
    async with client.lock("name"):
        pass


def blocking(client: sync.Client) -> None:
    assert_type(client.get("k"), etcd.GetResponse)
    assert_type(client.get_value("k"), Optional[bytes])
    client.put(42, "v")  # error
    with client.lock("n") as lock:
        assert_type(lock, sync.Lock)
    with client.lease(10) as lease:
        assert_type(lease, etcd.Lease)
    assert_type(client.try_lock("n"), sync.TryLock)
    with client.watch("k") as watcher:
        for event in watcher:
            assert_type(event, etcd.Event)


async def awaiting(client: aio.Client) -> None:
    assert_type(client.get("k"), Awaitable[etcd.GetResponse])
    assert_type(await client.get_value("k"), Optional[bytes])
    client.get("k").kvs  # error
    async with client.lock("n") as lock:
        assert_type(lock, aio.Lock)
    async with client.lease(10) as lease:
        assert_type(lease, etcd.Lease)
    async with client.watch("k") as watcher:
        async for event in watcher:
            assert_type(event, etcd.Event)
"""


def test_mypy_strict_refuses_keys_and_values_of_other_types(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    root = Path(puregrpc_etcd.__file__).resolve().parent.parent
    env = {**os.environ, "MYPYPATH": str(root)}
    command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental"]
    command += ["--cache-dir", str(tmp_path / "cache"), str(snippet)]
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, env=env, timeout=120
    )
    # Only the snippet's own lines count (the package's are checked by the project's mypy run).
    reported = {
        int(match.group(1))
        for match in re.finditer(r"^.*snippet\.py:(\d+): error:", result.stdout, re.MULTILINE)
    }
    expected = {
        number
        for number, line in enumerate(SNIPPET.splitlines(), start=1)
        if line.endswith("# error")
    }
    assert reported == expected, result.stdout
