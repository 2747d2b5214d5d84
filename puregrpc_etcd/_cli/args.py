"""Command-line parsing as etcdctl does it: global flags anywhere, ``--flag=true`` booleans.

Errors never print argparse's usage block: they raise ``UsageError`` and the command prints
one line, as every other expected failure does.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import TYPE_CHECKING, Any, Awaitable, Callable, NoReturn, Sequence, TypeVar

from puregrpc_etcd._endpoints import parse_duration

if TYPE_CHECKING:
    from puregrpc_etcd._cli.session import Context

Handler = Callable[["Context", argparse.Namespace], Awaitable[int]]
T = TypeVar("T")

# etcdctl's exit codes (pkg/cobrautl), so that scripts written for it keep working.
EXIT_ERROR = 1
EXIT_BAD_CONNECTION = 2
EXIT_INVALID_INPUT = 3
EXIT_BAD_FEATURE = 4
EXIT_INTERRUPTED = 130
EXIT_BAD_ARGS = 128

WRITE_OUT_FORMATS = ("simple", "json", "table")


class UsageError(Exception):
    """A bad command line or input; printed as one ``Error:`` line."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_ARGS) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# The flags whose bad values etcdctl refuses as a missing feature (exit 4), not a bad flag.
_FEATURE_FLAGS = ("-w/--write-out", "--order", "--sort-by", "--consistency")
# Flags and arguments that etcdctl takes as text and its command parses: a bad value is 128
# (a lease ID), or 1 where the command passes Go's parse error on (compaction's revision).
_COMMAND_PARSED = {"--lease": EXIT_BAD_ARGS, "revision": EXIT_ERROR}


def parse_error_code(message: str) -> int:
    """etcdctl's exit code for an argparse ``message``: as cobra's, a flag it cannot parse or
    an unknown command is 1; a bad output format, sort or consistency 4; missing or bad
    arguments (the commands check those themselves) 128."""
    if message.startswith(("unknown flag: ", "unknown shorthand flag: ")):
        return EXIT_ERROR
    flag = re.match(r"argument (\S*?)(?::| )", message)
    if flag and flag.group(1) in _COMMAND_PARSED:
        return _COMMAND_PARSED[flag.group(1)]
    flag = re.match(r"argument (-\S*?)(?::| )", message)
    if flag:
        return EXIT_BAD_FEATURE if flag.group(1) in _FEATURE_FLAGS else EXIT_ERROR
    if re.match(r"argument (COMMAND|SUBCOMMAND): invalid choice", message):
        return EXIT_ERROR
    return EXIT_BAD_ARGS


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises ``UsageError`` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')", parse_error_code(message))

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        argv = list(sys.argv[1:] if args is None else args)
        _refuse_negative_numbers(argv, _option_actions(self))
        try:
            parsed, extras = self.parse_known_args(argv, namespace)
        except UsageError:
            # An unknown flag makes argparse take its value for something else ("invalid
            # choice: '<the value>'"), and that value may be a password: name the flag instead.
            unknown = _first_unknown_flag(argv, _known_flags(self))
            if unknown is None:
                raise
            self.error(f"unknown flag: {unknown}")
        if extras:
            # Named, never quoted: a mistyped --password=... carries the password (etcdctl
            # also names the flag only).
            first = extras[0]
            if first.startswith("-"):
                self.error(f"unknown flag: {first.partition('=')[0]}")
            self.error(f"{len(extras)} unexpected argument(s)")
        return parsed


def _option_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every option string of ``parser`` and its subcommands, with its action."""
    actions = dict(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                actions.update(_option_actions(child))
    return actions


def _known_flags(parser: argparse.ArgumentParser) -> set[str]:
    return set(_option_actions(parser))


def _refuse_negative_numbers(argv: Sequence[str], options: dict[str, argparse.Action]) -> None:
    """``-5`` where an argument goes is a flag to etcdctl's parser (``unknown shorthand flag:
    '5' in -5``, exit 1), where argparse would take it for a negative argument. As the value
    of an option (``--rev -5``) it stays a value, as with pflag."""
    for index, token in enumerate(argv):
        if token == "--":
            return
        if not re.match(r"-\d", token) or index == 0:
            continue
        previous = argv[index - 1]
        action = options.get(previous)
        if action is not None and action.nargs != 0 and "=" not in previous:
            continue  # the value of the option before it
        raise UsageError(f"unknown shorthand flag: {token[1]!r} in {token}", EXIT_ERROR)


def _first_unknown_flag(argv: Sequence[str], known: set[str]) -> str | None:
    for token in argv:
        if token == "--":
            break
        name = token.partition("=")[0]
        if name.startswith("--") and name not in known:
            return name
    return None


def argument_type(
    parse: Callable[[str], T], valid: Callable[[T], bool], unparsed: str, refused: str
) -> Callable[[str], T]:
    """An argparse type: the value ``parse`` makes of the text, which ``valid`` must accept.

    The messages of the errors are ``unparsed`` (``parse`` raised ValueError) and ``refused``,
    formatted with ``text`` (and, in ``refused``, ``value``).
    """

    def convert(text: str) -> T:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(unparsed.format(text=text)) from None
        if not valid(value):
            raise argparse.ArgumentTypeError(refused.format(text=text, value=value))
        return value

    return convert


#: A positive duration in Go's syntax (``5s``, ``500ms``), in seconds.
duration = argument_type(
    parse_duration,
    lambda seconds: seconds > 0,
    "invalid duration {text!r} (e.g. 5s, 500ms)",
    "a duration must be positive, not {text!r}",
)

#: A lease or member id as etcdctl takes it: hexadecimal, no prefix needed.
hex_id = argument_type(
    lambda text: int(text, 16),
    lambda value: value >= 0,
    "bad ID {text!r}, expecting an ID in hex",
    "bad ID {text!r}, expecting an ID in hex",
)


def arg_bytes(text: str) -> bytes:
    """A key or value from the command line, byte for byte (undecodable bytes kept)."""
    return os.fsencode(text)


def add_global_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The flags every command takes; on subcommands they default to "not given" so that a flag
    before the subcommand is not overwritten."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global options")
    group.add_argument("--endpoints", default=default(None), help="comma-separated endpoints")
    group.add_argument("--user", default=default(None), help="username[:password]")
    group.add_argument("--password", default=default(None), help="password of --user")
    group.add_argument("--cacert", default=default(None), help="CA bundle to verify servers")
    group.add_argument("--cert", default=default(None), help="client TLS certificate file")
    group.add_argument("--key", dest="tls_key", default=default(None), help="client TLS key file")
    group.add_argument(
        "--insecure-skip-tls-verify",
        action="store_true",
        default=default(None),
        help="do not verify the server's certificate (testing only)",
    )
    group.add_argument(
        "--insecure-transport",
        action="store_true",
        default=default(None),
        help="accepted as etcdctl's (plaintext unless https:// or TLS files are given)",
    )
    group.add_argument(
        "--dial-timeout", type=duration, default=default(None), help="connect timeout (2s)"
    )
    group.add_argument(
        "--command-timeout", type=duration, default=default(None), help="per-call timeout (5s)"
    )
    group.add_argument(
        "--keepalive-time",
        type=duration,
        default=default(None),
        help="interval of the HTTP/2 pings that check the connection (the library's 10s)",
    )
    group.add_argument(
        "--keepalive-timeout",
        type=duration,
        default=default(None),
        help="how long a ping may wait for its answer (the library's 5s)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=default(None),
        help="accepted as etcdctl's; logs nothing more",
    )
    group.add_argument(
        "-d",
        "--discovery-srv",
        default=default(None),
        help="DNS discovery: not supported (an error); give --endpoints",
    )
    group.add_argument(
        "--discovery-srv-name", default=default(None), help="DNS discovery: not supported"
    )
    group.add_argument(
        "--insecure-discovery",
        action="store_true",
        default=default(None),
        help="DNS discovery: not supported",
    )
    group.add_argument(
        "-w",
        "--write-out",
        choices=WRITE_OUT_FORMATS,
        default=default(None),
        help="output format: simple, json or table",
    )
    group.add_argument(
        "--hex", action="store_true", default=default(None), help="print keys and values as hex"
    )


class CommandTree:
    """Builds nested subcommands, each leaf carrying its handler and the global flags."""

    def __init__(self, prog: str) -> None:
        self.root = Parser(
            prog=prog,
            description="An etcd v3 command line in pure Python (etcdctl-compatible).",
        )
        add_global_flags(self.root, suppress=False)
        self._globals = Parser(add_help=False)
        add_global_flags(self._globals, suppress=True)
        self._groups: dict[str, Any] = {}
        self._root_commands = self.root.add_subparsers(dest="command", metavar="COMMAND")

    @property
    def command_names(self) -> list[str]:
        return list(self._root_commands.choices)

    def group(self, name: str, help: str) -> Any:
        """A command with subcommands (``lease``, ``member``, ...); asking again for one that
        exists gives it back, so that modules can each add their subcommands to ``check``."""
        if name in self._groups:
            return self._groups[name]
        parser = self._root_commands.add_parser(name, help=help, description=help)
        children = parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
        parser.set_defaults(handler=None)
        self._groups[name] = children
        return children

    def group_parser(self, group: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self._root_commands.choices[group]
        return parser

    def command(
        self, name: str, help: str, handler: Handler, *, group: str | None = None
    ) -> argparse.ArgumentParser:
        parent = self._root_commands if group is None else self._groups[group]
        parser: argparse.ArgumentParser = parent.add_parser(
            name, help=help, description=help, parents=[self._globals]
        )
        parser.set_defaults(handler=handler)
        return parser


_BOOL_WORDS = {"true": True, "1": True, "t": True, "false": False, "0": False, "f": False}


def normalize_bool_flags(argv: Sequence[str], bool_flags: set[str]) -> list[str]:
    """Rewrite pflag's ``--prefix=true`` / ``--prefix=false`` into argparse's forms."""
    result: list[str] = []
    for index, arg in enumerate(argv):
        if arg == "--":
            result.extend(argv[index:])
            break
        name, sep, value = arg.partition("=")
        if sep and name in bool_flags and value.lower() in _BOOL_WORDS:
            if _BOOL_WORDS[value.lower()]:
                result.append(name)
            continue
        result.append(arg)
    return result


def bool_flags_of(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The ``store_true`` options of the command ``argv`` runs (the same name can be a
    boolean in one command and take a value in another)."""
    found: set[str] = set()
    words = iter(argv)
    while True:
        children: dict[str, argparse.ArgumentParser] = {}
        for action in parser._actions:
            if isinstance(action, argparse._StoreTrueAction):
                found.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                children = action.choices
        if not children:
            return found
        for word in words:
            if word in children:
                parser = children[word]
                break
        else:
            return found


def split_exec_command(
    argv: Sequence[str], command: str, command_names: Sequence[str]
) -> tuple[list[str], list[str]]:
    """``argv`` without what follows ``--`` when it runs ``command``, and that tail."""
    if "--" not in argv:
        return list(argv), []
    dash = list(argv).index("--")
    names = [word for word in argv[:dash] if word in command_names]
    if not names or names[0] != command:
        return list(argv), []
    return list(argv[:dash]), list(argv[dash + 1 :])
