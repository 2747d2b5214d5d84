"""The package and the command import what they use when they use it: ``import puregrpc_etcd``,
the command's ``--help`` and ``version`` load neither trio nor protobuf, a one-shot command's
client loads no lock, election, cluster, maintenance or auth module, and every public name
still resolves to the object its module defines."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import puregrpc_etcd
import puregrpc_etcd.grpc

HEAVY = ("trio", "google", "h2", "hpack", "outcome", "attr")
#: What ``get``, ``put`` and ``del`` do not use, imported by the calls that do.
NOT_FOR_KV = (
    "puregrpc_etcd.lock",
    "puregrpc_etcd.election",
    "puregrpc_etcd.cluster",
    "puregrpc_etcd.maintenance",
    "puregrpc_etcd.auth",
    "puregrpc_etcd._snapshot",
)


def heavy_modules_after(code: str) -> tuple[list[str], str]:
    """The heavy top-level packages a fresh interpreter has imported after running ``code``,
    and what it printed."""
    probe = (
        f"{code}\nimport sys\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    *printed, last = done.stdout.strip().splitlines()
    return ast.literal_eval(last), "\n".join(printed)


def type_checking_imports(package: object) -> dict[str, str]:
    """Name -> module of the ``from X import name`` lines under ``if TYPE_CHECKING:``."""
    tree = ast.parse(Path(package.__file__).read_text())  # type: ignore[attr-defined]
    found = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                module = "." * statement.level + (statement.module or "")
                for alias in statement.names:
                    found[alias.name] = module
    return found


def test_import_and_help_and_version_load_no_event_loop_and_no_protobuf() -> None:
    assert heavy_modules_after("import puregrpc_etcd") == ([], "")
    for argv in (["--help"], ["get", "--help"], ["version"]):
        heavy, printed = heavy_modules_after(
            f"from puregrpc_etcd.cli import run\nassert run({argv!r}) == 0"
        )
        assert heavy == [], argv
        assert printed, argv
    _, printed = heavy_modules_after("from puregrpc_etcd.cli import run\nrun(['version'])")
    assert printed.splitlines() == [
        f"puregrpc-etcd version: {puregrpc_etcd.__version__}",
        "API version: 3.5",
    ]


def loaded_after(code: str, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint(sorted(set(sys.modules) & set({names!r})))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_kv_command_loads_no_lock_election_or_admin_module() -> None:
    # What ``get k`` imports before its event loop starts (cli.run): the parser and the client.
    command = (
        "from puregrpc_etcd import cli\n"
        "args = cli.build_parser().root.parse_args(['get', 'k'])\n"
        "assert args.handler.__name__ == 'get_command'\n"
        "cli._import_the_client()"
    )
    assert loaded_after(command, (*NOT_FOR_KV, "puregrpc_etcd.client")) == ["puregrpc_etcd.client"]
    # ... and each is there when used.
    used = (
        "import puregrpc_etcd.client as c\n"
        "from types import SimpleNamespace\n"
        "client = c.Client(SimpleNamespace(unary=None, stream=None))\n"
        "client.cluster, client.maintenance, client.auth, client.election('e')"
    )
    assert loaded_after(used, NOT_FOR_KV) == sorted(NOT_FOR_KV)


def test_the_command_pauses_the_collector_only_while_it_starts() -> None:
    probe = (
        "import gc, sys\n"
        "sys.argv = ['puregrpc-etcd', 'get', 'k']\n"  # as the installed script starts
        "import puregrpc_etcd\n"
        "print(gc.isenabled())\n"
        "from puregrpc_etcd import cli\n"
        "cli._import_the_client()\n"
        "print(gc.isenabled())"
    )
    _, printed = heavy_modules_after(probe)
    assert printed.splitlines() == ["False", "True"]
    # A program that imports the library keeps its collector as it was.
    _, printed = heavy_modules_after("import gc, puregrpc_etcd\nprint(gc.isenabled())")
    assert printed == "True"


def test_using_a_name_imports_its_module() -> None:
    heavy, _ = heavy_modules_after("from puregrpc_etcd import Client")
    assert "trio" in heavy
    assert "google" in heavy


@pytest.mark.parametrize("package", [puregrpc_etcd, puregrpc_etcd.grpc])
def test_every_public_name_is_its_modules_and_the_lists_agree(package: object) -> None:
    homes = package._HOMES  # type: ignore[attr-defined]
    assert set(homes) == set(package.__all__)  # type: ignore[attr-defined]
    declared = type_checking_imports(package)
    assert set(declared) == set(homes)
    for name, home in homes.items():
        module = home if home.startswith("puregrpc_etcd") else f"{package.__name__}.{home}"  # type: ignore[attr-defined]
        assert declared[name].lstrip(".") in (module, home)
        assert getattr(package, name) is getattr(importlib.import_module(module), name)
    assert set(package.__all__) <= set(dir(package))  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        package.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_submodules_are_attributes_as_before() -> None:
    assert puregrpc_etcd.grpc.status.StatusCode is puregrpc_etcd.StatusCode
    assert puregrpc_etcd.testing.EtcdServer.__name__ == "EtcdServer"  # type: ignore[attr-defined]
