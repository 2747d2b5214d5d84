"""Test modules share helpers through named support modules (``grpc_support.py``,
``cli_support.py``, ...) and fixtures of the one root conftest, never by importing one another: a
test module imported by another is collected twice and ties two files' changes together."""

from __future__ import annotations

import ast
import pathlib

TESTS = pathlib.Path(__file__).resolve().parent.parent


def imported_test_modules(path: pathlib.Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if "test_" not in text and "conftest" not in text:
        return []
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [name for name in names if name.split(".")[-1].startswith(("test_", "conftest"))]
    return found


def test_imported_test_modules_are_found(tmp_path: pathlib.Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from test_grpc_protocol import start\nimport conftest\nimport grpc_support\n"
    )
    assert imported_test_modules(sample) == ["test_grpc_protocol", "conftest"]


def test_no_test_module_imports_another() -> None:
    offenders = {
        str(path.relative_to(TESTS)): names
        for path in sorted(TESTS.rglob("*.py"))
        for names in [imported_test_modules(path)]
        if names
    }
    assert offenders == {}


def test_one_conftest_at_the_root() -> None:
    # Fixtures and hooks of every directory load from tests/support, named in tests/conftest.py:
    # one place to find where a fixture comes from, and pytest_plugins only where pytest takes it.
    conftests = sorted(str(path.relative_to(TESTS)) for path in TESTS.rglob("conftest.py"))
    assert conftests == ["conftest.py"]


def async_autouse_fixtures(text: str) -> list[str]:
    """The async fixtures marked ``autouse`` in a module's source."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and any(
                keyword.arg == "autouse"
                and isinstance(keyword.value, ast.Constant)
                and keyword.value.value is True
                for keyword in decorator.keywords
            ):
                found.append(node.name)
    return found


def test_async_autouse_fixtures_are_found() -> None:
    sample = (
        "@pytest.fixture(autouse=True)\nasync def a(): yield\n"
        "@pytest.fixture(autouse=True)\ndef b(): yield\n"
        "@pytest.fixture\nasync def c(): yield\n"
    )
    assert async_autouse_fixtures(sample) == ["a"]


def test_no_async_autouse_fixture() -> None:
    # pytest-trio (0.8, with pytest 9) never runs an async fixture that is only autouse: its
    # set-up and tear-down silently do not happen. Make such a fixture plain, or request it.
    offenders = {
        str(path.relative_to(TESTS)): names
        for path in sorted(TESTS.rglob("*.py"))
        for names in [async_autouse_fixtures(path.read_text(encoding="utf-8"))]
        if names
    }
    assert offenders == {}
