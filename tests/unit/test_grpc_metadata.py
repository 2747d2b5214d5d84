"""Header coding: grpc-timeout, -bin metadata, grpc-message and request headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puregrpc_etcd.grpc.metadata import (
    RequestHeaderTemplate,
    decode_grpc_message,
    decode_metadata,
    decode_timeout,
    encode_grpc_message,
    encode_metadata,
    encode_timeout,
)


@pytest.mark.parametrize(
    ("seconds", "wire"),
    [
        (0.0, b"0n"),
        (1e-9, b"1n"),
        (0.099_999_999, b"99999999n"),
        (0.1, b"100000u"),
        (1.0, b"1000000u"),
        (99.999_999, b"99999999u"),
        (100.0, b"100000m"),
        (99_999.999, b"99999999m"),
        (100_000.0, b"100000S"),
        (100_000_000.0, b"1666667M"),
        (float("inf"), b"99999999H"),
        (1e30, b"99999999H"),
    ],
)
def test_timeout_uses_the_finest_unit_that_fits_in_eight_digits(
    seconds: float, wire: bytes
) -> None:
    assert encode_timeout(seconds) == wire


@given(st.floats(min_value=0, max_value=3e11, allow_nan=False))  # 99999999H is the cap
def test_timeout_never_has_more_than_eight_digits_and_never_shrinks(seconds: float) -> None:
    wire = encode_timeout(seconds)
    assert 2 <= len(wire) <= 9
    assert wire[:-1].isdigit()
    assert decode_timeout(wire) >= seconds * (1 - 1e-12)


def test_timeout_rejects_negative_and_nan() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        encode_timeout(-1.0)
    with pytest.raises(ValueError, match="non-negative"):
        encode_timeout(float("nan"))


@pytest.mark.parametrize(
    ("wire", "seconds"),
    [(b"1H", 3600.0), (b"2M", 120.0), (b"3S", 3.0), (b"4m", 0.004), (b"5u", 5e-6), ("6n", 6e-9)],
)
def test_timeout_decodes_every_unit(wire: bytes | str, seconds: float) -> None:
    assert decode_timeout(wire) == pytest.approx(seconds)


@pytest.mark.parametrize("wire", [b"", b"S", b"123456789S", b"1x", b"-1S", b"1.5S"])
def test_timeout_decoder_rejects_malformed(wire: bytes) -> None:
    with pytest.raises(ValueError, match="malformed"):
        decode_timeout(wire)


def test_binary_metadata_is_base64_without_padding_and_decodes_either_way() -> None:
    assert encode_metadata([("trace-bin", b"\xab\xab\xab\xab")]) == [(b"trace-bin", b"q6urqw")]
    assert decode_metadata([(b"trace-bin", b"q6urqw")]) == (("trace-bin", b"\xab\xab\xab\xab"),)
    assert decode_metadata([(b"trace-bin", b"q6urqw==")]) == (("trace-bin", b"\xab\xab\xab\xab"),)


def test_joined_binary_values_are_split_before_decoding() -> None:
    assert decode_metadata([(b"x-bin", b"AQ,Ag==")]) == (("x-bin", b"\x01\x02"),)


@given(st.binary(max_size=100))
def test_binary_metadata_round_trips(value: bytes) -> None:
    encoded = encode_metadata([("k-bin", value)])
    assert decode_metadata(encoded) == (("k-bin", value),)


def test_ascii_metadata_passes_through() -> None:
    assert encode_metadata([("token", "abc def")]) == [(b"token", b"abc def")]


@pytest.mark.parametrize(
    "key", [":path", "grpc-timeout", "grpc-status", "content-type", "te", "connection", "host"]
)
def test_reserved_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        encode_metadata([(key, "x")])


@pytest.mark.parametrize("key", ["Upper", "sp ace", "", "é"])
def test_invalid_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="invalid metadata key"):
        encode_metadata([(key, "x")])


def test_values_must_be_printable_ascii_and_typed_by_suffix() -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        encode_metadata([("k", "line\nbreak")])
    with pytest.raises(ValueError, match="printable ASCII"):
        encode_metadata([("k", "é")])
    with pytest.raises(ValueError, match="printable ASCII"):
        encode_metadata([("k", "€")])
    with pytest.raises(TypeError):
        encode_metadata([("k", b"bytes")])
    with pytest.raises(TypeError):
        encode_metadata([("k-bin", "str")])


def test_transport_headers_are_hidden_from_metadata() -> None:
    headers = [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-status", b"3"),
        (b"grpc-message", b"bad"),
        (b"grpc-encoding", b"identity"),
        (b"grpc-status-details-bin", b"AQI"),
        (b"x-custom", b"v"),
    ]
    assert decode_metadata(headers) == (
        ("grpc-status-details-bin", b"\x01\x02"),
        ("x-custom", "v"),
    )


def test_grpc_message_percent_encoding() -> None:
    assert encode_grpc_message("a b%c") == b"a b%25c"
    assert encode_grpc_message("\t\n\r") == b"%09%0A%0D"
    assert encode_grpc_message("€") == b"%E2%82%AC"


@given(st.text())
def test_grpc_message_round_trips(text: str) -> None:
    assert decode_grpc_message(encode_grpc_message(text)) == text.encode(
        "utf-8", "surrogatepass"
    ).decode("utf-8", "replace")


def test_broken_percent_escapes_are_kept() -> None:
    assert decode_grpc_message(b"100% sure %4") == "100% sure %4"
    assert decode_grpc_message(b"%FF") == "\ufffd"


def test_request_headers_reserved_first_then_timeout_then_the_rest() -> None:
    template = RequestHeaderTemplate(scheme="http", authority="[::1]:2379", user_agent="ua/1")
    headers = template.build("/pkg.Service/Method", 1.5, [(b"token", b"t")])
    assert [tuple(header) for header in headers] == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/pkg.Service/Method"),
        (b":authority", b"[::1]:2379"),
        (b"grpc-timeout", b"1500000u"),
        (b"te", b"trailers"),
        (b"content-type", b"application/grpc"),
        (b"user-agent", b"ua/1"),
        (b"token", b"t"),
    ]
    without_timeout = template.build("/pkg.Service/Method", None, None)
    assert b"grpc-timeout" not in [name for name, _ in without_timeout]


def test_request_headers_refuse_a_path_without_slash() -> None:
    template = RequestHeaderTemplate(scheme="http", authority="h:1", user_agent="ua")
    with pytest.raises(ValueError, match=r"/package\.Service/Method"):
        template.build("pkg.Service/Method", None, None)
