"""The README's testing example, run by pytest as a user would run it (with the configuration
the README shows, and without it), and what the plugin adds to a failing test's report."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
TIMEOUT = 180


def readme_blocks(language: str) -> list[str]:
    """The code blocks of the README's testing section in ``language``."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Testing your own application against a real etcd", 1)[1]
    section = section.split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


def run_pytest(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    [example] = readme_blocks("python")
    (tmp_path / "test_example.py").write_text(example, encoding="utf-8")
    return tmp_path


@pytest.mark.slow
def test_the_readme_example_passes_as_configured_there(project: Path) -> None:
    [config] = readme_blocks("toml")
    (project / "pyproject.toml").write_text(config, encoding="utf-8")
    done = run_pytest(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


def test_without_pytest_trio_configured_the_report_says_how(project: Path) -> None:
    done = run_pytest(project)
    assert done.returncode == 1
    assert "2 failed, 1 passed" in done.stdout
    assert "async tests need pytest-trio" in done.stdout
    assert "trio_mode = true" in done.stdout


def test_a_failing_test_shows_the_log_after_startup_only(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(readme_blocks("toml")[0], encoding="utf-8")
    (tmp_path / "test_failing.py").write_text(
        "def test_fails(etcd_server):\n"
        "    etcd_server.kill()\n"  # etcd logs nothing of a SIGKILL; restarting logs plenty
        "    etcd_server.restart()\n"
        "    assert False, 'the cause'\n",
        encoding="utf-8",
    )
    done = run_pytest(tmp_path)
    assert done.returncode == 1
    assert "AssertionError: the cause" in done.stdout
    section = done.stdout.split("log after its startup", 1)[1]
    # What the restart logged is there; the first startup's lines are not (every etcd version
    # warns once per start that its simple tokens are not signed: once here).
    assert section.count("simple token is not cryptographically signed") == 1
