"""A user's ``mypy --strict`` sees the types of keys and values (``_keys.KeyLike``): a key or
value that is not str or bytes-like is a type error before it is a ``TypeError`` at run time."""

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
import puregrpc_etcd as etcd


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
