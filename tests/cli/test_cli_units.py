"""The command's pure parts, no network: Go-compatible formats, durations, the txn reader and
the command-line rewriting."""

from __future__ import annotations

import argparse
import io

import pytest

from puregrpc_etcd._cli.args import UsageError, duration, normalize_bool_flags, split_exec_command
from puregrpc_etcd._cli.formats import go_duration, go_json, human_bytes, render_table
from puregrpc_etcd._cli.session import settings_from
from puregrpc_etcd._cli.txn_input import argify, go_unquote, parse_compare, parse_op, read_txn
from puregrpc_etcd.cli import build_parser


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (9, "9 B"), (999, "999 B"), (1000, "1.0 kB"), (36864, "37 kB"),
     (24576, "25 kB"), (9_950, "10 kB"), (9_940, "9.9 kB"), (1_500_000, "1.5 MB"),
     (10**12, "1.0 TB")],
)  # fmt: skip
def test_human_bytes_as_go_humanize(size: int, text: str) -> None:
    assert human_bytes(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.0000005, "500ns"), (0.0000015, "1.5µs"), (0.004707386, "4.707386ms"),
     (1.5, "1.5s"), (61, "1m1s"), (3600.25, "1h0m0.25s"), (2, "2s")],
)  # fmt: skip
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("250ms", 0.25), ("1m30s", 90.0), ("2", 2.0), ("1.5h", 5400.0)],
)
def test_durations_of_flags(text: str, seconds: float) -> None:
    assert duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "s", "1s5", "0s"])
def test_durations_of_flags_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="duration"):
        duration(text)


def test_go_json_escapes_html_as_go_does() -> None:
    assert go_json({"a": "<b>&", "n": 2**64 - 1}) == (
        '{"a":"\\u003cb\\u003e\\u0026","n":18446744073709551615}'
    )


def test_table_as_tablewriter_draws_it() -> None:
    assert render_table(("endpoint", "ok"), [["127.0.0.1:1", "true"]]).splitlines() == [
        "+-------------+------+",
        "|  ENDPOINT   |  OK  |",
        "+-------------+------+",
        "| 127.0.0.1:1 | true |",
        "+-------------+------+",
    ]


def test_go_quoted_strings() -> None:
    assert go_unquote('"a\\tb\\"c\\\\"') == 'a\tb"c\\'
    assert go_unquote("`raw \\n`") == "raw \\n"
    assert go_unquote('"\\x41\\u00e9\\101"') == "Aé" + "A"
    with pytest.raises(ValueError, match="escape"):
        go_unquote('"\\q"')


def test_argify_splits_like_etcdctl() -> None:
    assert argify("put k \"two words\" 'raw \\n'") == ["put", "k", "two words", "raw \\n"]


def test_compares_in_etcdctl_syntax() -> None:
    assert repr(parse_compare('value("k") = "v"')) == repr(parse_compare('val("k") == "v"'))
    parse_compare('mod("k") > "3"')
    parse_compare('c("k") < "10"')
    parse_compare('lease("k") != "694d77aa9e38260f"')
    for bad in ('value("k")', 'weight("k") = "1"', 'ver("k") = "x"', 'ver("k") ~ "1"'):
        with pytest.raises(UsageError) as caught:
            parse_compare(bad)
        assert caught.value.exit_code == 3


def test_ops_take_the_options_of_get_put_and_del() -> None:
    assert parse_op("get k --prefix --limit 2").kind == "get"
    assert parse_op('put k "v v" --prev-kv').kind == "put"
    assert parse_op("del k --from-key").kind == "delete"
    for bad in ("get", "put k", "get k --bogus", "watch k"):
        with pytest.raises(UsageError):
            parse_op(bad)


def test_read_txn_parts_and_end_of_input() -> None:
    compares, success, failure = read_txn(io.StringIO('ver("k") = "0"\n\nput k v\n\n\n'))
    assert (len(compares), len(success), len(failure)) == (1, 1, 0)
    # As etcdctl: input that ends before a part's blank line is refused, never committed.
    for truncated in ("", "\n\n", 'ver("k") = "0"\n\nput k v\n\n', "\n\nput k v"):
        with pytest.raises(UsageError, match=r"^EOF$") as raised:
            read_txn(io.StringIO(truncated))
        assert raised.value.exit_code == 3


def test_boolean_flags_take_go_spellings_only_where_they_are_booleans() -> None:
    tree = build_parser()
    argv = ["get", "k", "--prefix=true", "--keys-only=false"]
    assert normalize_bool_flags(argv, {"--prefix", "--keys-only"}) == ["get", "k", "--prefix"]
    assert normalize_bool_flags(["put", "--", "k", "--prefix=true"], {"--prefix"}) == [
        "put", "--", "k", "--prefix=true",
    ]  # fmt: skip
    args = tree.root.parse_args(["user", "add", "u", "--interactive=false"])
    assert args.interactive is False


def test_watch_command_after_double_dash() -> None:
    names = build_parser().command_names
    assert split_exec_command(["watch", "k", "--", "echo", "hi"], "watch", names) == (
        ["watch", "k"],
        ["echo", "hi"],
    )
    assert split_exec_command(["put", "--", "watch", "-v"], "watch", names) == (
        ["put", "--", "watch", "-v"],
        [],
    )


def test_settings_merge_flags_over_environment() -> None:
    args = build_parser().root.parse_args(["--user", "u:s3cr3t", "get", "k", "-w", "json"])
    settings = settings_from(args, {"ETCDCTL_ENDPOINTS": "a:1,b:2", "ETCDCTL_HEX": "true",
                                    "ETCDCTL_COMMAND_TIMEOUT": "2s"})  # fmt: skip
    assert settings.endpoints == ["a:1", "b:2"]
    assert (settings.user, settings.password, settings.hex) == ("u", "s3cr3t", True)
    assert (settings.write_out, settings.command_timeout) == ("json", 2.0)
    assert "s3cr3t" not in repr(settings)
