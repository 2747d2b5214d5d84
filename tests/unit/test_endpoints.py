"""Endpoint strings, etcd:// URLs, etcdctl's variables and durations, parsed without I/O."""

from __future__ import annotations

import ssl

import pytest

from puregrpc_etcd._endpoints import (
    make_tls_context,
    normalize_endpoint,
    parse_duration,
    parse_endpoints,
    settings_from_env,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:2379", "127.0.0.1:2379"),
        ("localhost", "localhost:2379"),
        ("http://10.0.0.1:2379/", "http://10.0.0.1:2379"),
        ("HTTPS://etcd.example.com:443", "https://etcd.example.com:443"),
        ("[::1]:23790", "[::1]:23790"),
        ("https://[::1]", "https://[::1]:2379"),
    ],
)
def test_endpoint_forms(given: str, expected: str) -> None:
    assert normalize_endpoint(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "host:0",
        "host:99999",
        "host:port",
        "::1:2379",
        "ftp://h:1",
        "unix://sock",
        "[::1",
        "h:1/path",
        "[::1]x",
    ],
)
def test_bad_endpoints(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize_endpoint(bad)


def test_lists_and_comma_separated_strings() -> None:
    assert parse_endpoints(["a:1", "https://b:2"]).endpoints == ["a:1", "https://b:2"]
    assert parse_endpoints(" a:1, b:2 ,").endpoints == ["a:1", "b:2"]
    with pytest.raises(TypeError):
        parse_endpoints([b"a:1"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        parse_endpoints(b"a:1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no endpoints"):
        parse_endpoints([])


def test_default_endpoint_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETCDCTL_ENDPOINTS", raising=False)
    assert parse_endpoints(None).endpoints == ["127.0.0.1:2379"]
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", "http://h1:1,http://h2:2")
    assert parse_endpoints(None).endpoints == ["http://h1:1", "http://h2:2"]


def test_etcd_url_carries_everything() -> None:
    settings = parse_endpoints(
        "etcd://alice:p%40ss%3Aword@h1:2379,h2,[::1]:3/?dial_timeout=5&command_timeout=1m30s"
    )
    assert settings.endpoints == ["http://h1:2379", "http://h2:2379", "http://[::1]:3"]
    assert settings.username == "alice"
    assert settings.password == "p@ss:word"
    assert settings.dial_timeout == 5.0
    assert settings.command_timeout == 90.0
    assert settings.tls is False
    assert settings.tls_context() is None
    assert "p@ss" not in repr(settings)


def test_etcds_url_uses_tls_with_files() -> None:
    settings = parse_endpoints("etcds://h1:2379/?cacert=/ca.pem&cert=/c.pem&key=/k.pem")
    assert settings.endpoints == ["https://h1:2379"]
    assert settings.tls is True
    assert (settings.cacert, settings.cert, settings.key) == ("/ca.pem", "/c.pem", "/k.pem")
    assert settings.username is None


@pytest.mark.parametrize(
    "bad",
    ["etcd://", "etcd://h1/path", "etcd://h1/?bogus=1", "etcd://h1/?dial_timeout=soon"],
)
def test_bad_etcd_urls(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoints(bad)


def test_etcdctl_variables() -> None:
    env = {
        "ETCDCTL_ENDPOINTS": "https://h1:2379,https://h2:2379",
        "ETCDCTL_USER": "root:secret",
        "ETCDCTL_CACERT": "/ca.pem",
        "ETCDCTL_CERT": "/c.pem",
        "ETCDCTL_KEY": "/k.pem",
        "ETCDCTL_INSECURE_SKIP_TLS_VERIFY": "true",
        "ETCDCTL_DIAL_TIMEOUT": "2s",
        "ETCDCTL_COMMAND_TIMEOUT": "500ms",
    }
    settings = settings_from_env(env)
    assert settings.endpoints == ["https://h1:2379", "https://h2:2379"]
    assert (settings.username, settings.password) == ("root", "secret")
    assert (settings.cacert, settings.cert, settings.key) == ("/ca.pem", "/c.pem", "/k.pem")
    assert settings.insecure_skip_verify is True
    assert settings.dial_timeout == 2.0
    assert settings.command_timeout == 0.5


def test_etcdctl_password_variable_and_defaults() -> None:
    settings = settings_from_env({"ETCDCTL_USER": "bob", "ETCDCTL_PASSWORD": "pw:with:colons"})
    assert settings.endpoints == ["127.0.0.1:2379"]
    assert (settings.username, settings.password) == ("bob", "pw:with:colons")
    assert settings.dial_timeout is None
    assert settings_from_env({}).username is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5", 5.0),
        ("2.5", 2.5),
        ("1m30s", 90.0),
        ("250ms", 0.25),
        ("1h", 3600.0),
        ("10us", 1e-5),
        ("0", 0.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "-1", "5x", "s", "1m30", "nan", "inf"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(bad)


def test_tls_context_speaks_h2_and_can_skip_verification() -> None:
    context = make_tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    insecure = make_tls_context(insecure_skip_verify=True)
    assert insecure.verify_mode == ssl.CERT_NONE
    with pytest.raises(ValueError, match="client certificate"):
        make_tls_context(key="/k.pem")
    assert parse_endpoints("https://h:1").tls_context() is not None


def test_explicit_settings_override_the_environment() -> None:
    env = settings_from_env(
        {"ETCDCTL_ENDPOINTS": "a:1", "ETCDCTL_USER": "u:p", "ETCDCTL_DIAL_TIMEOUT": "3"}
    )
    merged = env.overridden_by(parse_endpoints("etcd://other:pw@b:2/?command_timeout=4"))
    assert merged.endpoints == ["http://b:2"]
    assert (merged.username, merged.password) == ("other", "pw")
    assert (merged.dial_timeout, merged.command_timeout) == (3.0, 4.0)
    assert env.overridden_by(parse_endpoints("c:3")).username == "u"
