"""user, role and auth against a real etcd (a server of this module's own, since it turns
authentication on), and permission denied as one line."""

from __future__ import annotations

from typing import Callable
from urllib.parse import quote

import pytest
from cli_support import Runner, etcd_3_4


def test_users_roles_and_authentication(cli: Runner) -> None:
    def ok(*args: str, stdin: bytes = b"") -> str:
        result = cli(*args, stdin=stdin)
        assert result.code == 0, (args, result.error)
        return result.text

    assert ok("role", "add", "reader") == "Role reader created\n"
    assert ok("role", "grant-permission", "reader", "read", "app/", "--prefix") == (
        "Role reader updated\n"
    )
    assert ok("role", "grant-permission", "reader", "readwrite", "scratch") == (
        "Role reader updated\n"
    )
    assert ok("role", "get", "reader") == cli.etcdctl("role", "get", "reader").text
    assert ok("role", "get", "reader") == (
        "Role reader\nKV Read:\n\t[app/, app0) (prefix app/)\n\tscratch\nKV Write:\n\tscratch\n"
    )
    assert ok("role", "revoke-permission", "reader", "scratch") == (
        "Permission of key scratch is revoked from role reader\n"
    )
    assert ok("user", "add", "alice:secret") == "User alice created\n"
    assert ok("user", "add", "bob", "--interactive=false", stdin=b"pw-from-stdin\n") == (
        "User bob created\n"
    )
    assert ok("user", "grant-role", "alice", "reader") == "Role reader is granted to user alice\n"
    assert ok("user", "get", "alice") == cli.etcdctl("user", "get", "alice").text
    assert ok("user", "get", "alice") == "User: alice\nRoles: reader\n"
    assert ok("user", "list") == cli.etcdctl("user", "list").text == "alice\nbob\n"
    assert ok("role", "list") == "reader\n"
    if not etcd_3_4():
        assert ok("auth", "status") == cli.etcdctl("auth", "status").text
    ok("user", "add", "root", "--new-user-password=rootpw")
    ok("user", "grant-role", "root", "root")
    assert ok("auth", "enable") == "Authentication Enabled\n"
    try:
        ok("--user=root:rootpw", "put", "app/name", "demo")
        assert ok("--user=alice:secret", "get", "app/name", "--print-value-only") == "demo\n"
        assert ok("--user=bob", "--password=pw-from-stdin", "user", "get", "bob") == (
            "User: bob\nRoles:\n"
        )
        denied = cli("--user=alice:secret", "put", "app/name", "changed")
        assert (denied.code, denied.error) == (1, "Error: etcdserver: permission denied\n")
        wrong = cli("--user=alice:wrong", "get", "app/name")
        assert wrong.code == 1
        assert wrong.error.startswith("Error: etcdserver: authentication failed")
        assert wrong.error.count("\n") == 1
        no_password = cli("--user=alice", "get", "app/name")
        assert no_password.code == 128
        assert no_password.error.count("\n") == 1
        if not etcd_3_4():
            assert ok("--user=root:rootpw", "auth", "status") == (
                cli.etcdctl("--user=root:rootpw", "auth", "status").text
            )
        _etcd_urls_carry_the_credentials(cli, ok)
    finally:
        assert ok("--user=root:rootpw", "auth", "disable") == "Authentication Disabled\n"
    assert ok("user", "passwd", "bob", "--interactive=false", stdin=b"new\n") == (
        "Password updated\n"
    )
    assert ok("user", "revoke-role", "alice", "reader") == (
        "Role reader is revoked from user alice\n"
    )
    assert ok("user", "delete", "bob") == "User bob deleted\n"
    assert ok("role", "delete", "reader") == "Role reader deleted\n"


def test_auth_replies_in_json_and_table_as_etcdctl(cli: Runner) -> None:
    """Every user, role and auth reply in -w json, byte for byte, and -w table refused alike."""

    def same(ours: list[str], theirs: list[str] | None = None, stdin: bytes = b"") -> None:
        mine = cli(*ours, "-w", "json", stdin=stdin)
        real = cli.etcdctl(*(theirs or ours), "-w", "json", stdin=stdin)
        assert (mine.code, mine.err, mine.out) == (real.code, real.err, real.out), ours
        table = cli(*ours, "-w", "table", stdin=stdin)
        # Refused before any I/O; etcdctl refuses after the call, so compare with it on reads.
        assert (table.code, table.err) == (4, b"Error: table not supported as output format\n")
        if ours[1] in ("get", "list", "status") and "--detail" not in ours:
            assert cli.etcdctl(*ours, "-w", "table").err == table.err

    for who in ("o", "t"):  # the state to read, made by us (o) and by etcdctl (t) alike
        cli.etcdctl("role", "add", f"jr-{who}")
        cli.etcdctl("user", "add", f"ju-{who}:pw")
    pairs = [
        ["role", "add", "jr2-{}"],
        ["role", "grant-permission", "jr-{}", "read", "a"],
        ["role", "grant-permission", "jr-{}", "readwrite", "p/", "--prefix"],
        ["role", "grant-permission", "jr-{}", "write", "z", "--from-key"],
        ["user", "add", "ju2-{}:pw"],
        ["user", "grant-role", "ju-{}", "jr-{}"],
        ["user", "get", "ju-{}"],
        ["user", "get", "ju-{}", "--detail"],
        ["role", "get", "jr-{}"],
        ["user", "list"],
        ["role", "list"],
        ["auth", "status"],
        ["role", "revoke-permission", "jr-{}", "a"],
        ["user", "revoke-role", "ju-{}", "jr-{}"],
        ["user", "delete", "ju2-{}"],
        ["role", "delete", "jr2-{}"],
    ]
    if etcd_3_4():  # etcd 3.4 has no AuthStatus call, etcdctl 3.4 no `auth status`
        pairs.remove(["auth", "status"])
    for words in pairs:
        # Reads read the same thing with both tools; each tool changes its own users and roles.
        theirs = "o" if words[1] in ("get", "list", "status") else "t"
        same([w.format("o") for w in words], [w.format(theirs) for w in words])
    same(["user", "passwd", "ju-o", "--interactive=false"], ["user", "passwd", "ju-t",
         "--interactive=false"], stdin=b"new\n")  # fmt: skip
    detail = cli("user", "get", "ju-o", "--detail", "-w", "json")
    assert detail.out.startswith(b"User: ju-o\n")


URL_PASSWORD = "Url-Pw/4?x@y:z"  # every character an etcd:// URL must percent-encode


def _etcd_urls_carry_the_credentials(cli: Runner, ok: Callable[..., str]) -> None:
    """With authentication on: the etcd:// URL the library documents, as --endpoints or
    ETCDCTL_ENDPOINTS, signs in with its user and password; errors never quote the password."""
    ok("--user=root:rootpw", "user", "add", "carol", "--new-user-password=" + URL_PASSWORD)
    ok("--user=root:rootpw", "user", "grant-role", "carol", "reader")
    url = f"etcd://carol:{quote(URL_PASSWORD, safe='')}@{cli.endpoint}/?dial_timeout=1s"
    assert ok(f"--endpoints={url}", "get", "app/name", "--print-value-only") == "demo\n"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ETCDCTL_ENDPOINTS", url)
        result = cli("get", "app/name", "--print-value-only", endpoint=False)
        assert (result.code, result.text) == (0, "demo\n"), result.error
    denied = cli(f"--endpoints={url}", "put", "app/name", "changed", endpoint=False)
    assert (denied.code, denied.error) == (1, "Error: etcdserver: permission denied\n")
    # A --user flag wins over the URL's user (with the URL's password left out).
    assert ok(f"--endpoints={url}", "--user=root:rootpw", "put", "app/url", "x") == "OK\n"
    wrong = url.replace("carol:", "carol:Wrong", 1)
    failed = cli(f"--endpoints={wrong}", "get", "app/name", endpoint=False)
    assert failed.code == 1
    assert failed.error.startswith("Error: etcdserver: authentication failed")
    bad_option = cli(f"--endpoints={url}&nope=1", "get", "app/name", endpoint=False)
    assert bad_option.code == 128
    assert bad_option.error.startswith("Error: invalid etcd:// URL 'etcd://***@127.0.0.1:")
    unencoded = url.replace(quote(URL_PASSWORD, safe=""), URL_PASSWORD)
    malformed = cli(f"--endpoints={unencoded}", "get", "app/name", endpoint=False)
    assert malformed.code == 128
    for result in (failed, bad_option, malformed):
        assert result.error.count("\n") == 1, result.error
        for piece in ("Url-Pw", "Wrong", "x@y"):
            assert piece not in result.error + result.text
    ok("--user=root:rootpw", "del", "app/url")
    ok("--user=root:rootpw", "user", "delete", "carol")
