"""Output in etcdctl 3.5's formats: Go's ``encoding/json`` of its structs, tables and units.

etcdctl's json is Go's encoding of the gogoproto structs: zero fields left out (omitempty),
keys and values base64, 64-bit ids as plain numbers; these builders reproduce it field by field.
"""

from __future__ import annotations

import base64
import json
import math
import sys
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from puregrpc_etcd.types import KeyValue, ResponseHeader

JsonObject = dict[str, Any]


class Output:
    """Writes lines of bytes or text to the current ``sys.stdout``, flushed line by line."""

    def __init__(self, *, hex_bytes: bool = False) -> None:
        self.hex_bytes = hex_bytes

    def line(self, data: bytes | str = b"") -> None:
        raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        stdout = sys.stdout
        buffer = getattr(stdout, "buffer", None)
        if buffer is None:
            stdout.write(raw.decode("utf-8", "replace") + "\n")
            stdout.flush()
            return
        stdout.flush()
        buffer.write(raw + b"\n")
        buffer.flush()

    def json(self, value: object) -> None:
        self.line(go_json(value))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.line(render_table(header, rows).rstrip("\n"))

    def text(self, data: bytes) -> bytes:
        """Bytes as etcdctl prints them: raw, or ``\\x``-escaped with ``--hex``."""
        if self.hex_bytes:
            return "".join(f"\\x{byte:02x}" for byte in data).encode()
        return data

    def kv(self, kv: KeyValue, *, value_only: bool = False) -> None:
        if not value_only:
            self.line(self.text(kv.key))
        self.line(self.text(kv.value))


def go_json(value: object) -> str:
    """Compact JSON as Go's ``json.Marshal`` writes it (HTML characters escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def omit_empty(pairs: Sequence[tuple[str, Any]]) -> JsonObject:
    """A JSON object without the zero-valued fields, as Go's ``omitempty`` leaves them out."""
    return {name: value for name, value in pairs if value}


def header_json(header: ResponseHeader) -> JsonObject:
    return omit_empty(
        [
            ("cluster_id", header.cluster_id),
            ("member_id", header.member_id),
            ("revision", header.revision),
            ("raft_term", header.raft_term),
        ]
    )


def kv_json(kv: KeyValue) -> JsonObject:
    return omit_empty(
        [
            ("key", b64(kv.key)),
            ("create_revision", kv.create_revision),
            ("mod_revision", kv.mod_revision),
            ("version", kv.version),
            ("value", b64(kv.value)),
            ("lease", kv.lease),
        ]
    )


def kvs_json(kvs: Sequence[KeyValue]) -> list[JsonObject] | None:
    return [kv_json(kv) for kv in kvs] or None


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table as etcdctl draws it (olekukonko/tablewriter, cells aligned right)."""
    titles = [title.upper() for title in header]
    widths = [len(title) for title in titles]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    border = "+" + "+".join("-" * (width + 2) for width in widths) + "+"
    lines = [border]
    centred = []
    for title, width in zip(titles, widths):
        gap = width - len(title)
        centred.append(" " * (gap // 2) + title + " " * (gap - gap // 2))
    lines.append("| " + " | ".join(centred) + " |")
    lines.append(border)
    lines.extend("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |" for row in rows)
    lines.append(border)
    return "\n".join(lines) + "\n"


_SI_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def human_bytes(size: int) -> str:
    """Bytes in SI units as go-humanize's ``Bytes`` writes them (``"37 kB"``)."""
    if size < 10:
        return f"{size} B"
    exponent = min(math.floor(math.log(size) / math.log(1000)), len(_SI_UNITS) - 1)
    value = math.floor(size / 1000**exponent * 10 + 0.5) / 10
    pattern = "{:.1f} {}" if value < 10 else "{:.0f} {}"
    return pattern.format(value, _SI_UNITS[exponent])


def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String`` writes it (``"4.707386ms"``, ``"1.5s"``)."""
    nanos = round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000:
        return f"{sign}{nanos}ns"
    if nanos < 1_000_000:
        return sign + _trim(nanos, 1_000) + "µs"
    if nanos < 1_000_000_000:
        return sign + _trim(nanos, 1_000_000) + "ms"
    whole_seconds, fraction = divmod(nanos, 1_000_000_000)
    hours, rest = divmod(whole_seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = _trim(secs * 1_000_000_000 + fraction, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _trim(amount: int, unit: int) -> str:
    whole, fraction = divmod(amount, unit)
    if not fraction:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{fraction:0{digits}d}".rstrip("0")
