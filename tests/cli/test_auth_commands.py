"""user, role and auth against a real etcd (a server of this module's own, since it turns
authentication on), and permission denied as one line."""

from __future__ import annotations

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
