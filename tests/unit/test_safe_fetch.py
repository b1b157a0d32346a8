"""The link policy: address classes, origins, the pinned connection, redirects (against servers of the tests' own)."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia.exceptions import GenMediaValidationError, LinkRefusedError
from airflow_provider_genmedia.outcomes import airflow_outcome
from airflow_provider_genmedia.safe_fetch import (
    MAX_REDIRECTS,
    FetchPolicy,
    Origin,
    SafeSession,
    address_class,
    parse_origins,
)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "reserved"),  # carrier-grade NAT: not global
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fd00::1", "unique-local"),
        ("fc00::1", "unique-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:0.0.0.0", "unspecified"),
        ("2002:a9fe:a9fe::", "link-local"),  # 6to4 of 169.254.169.254
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_every_non_public_address_has_its_class(address: str, kind: str | None) -> None:
    assert address_class(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://2130706433/", "loopback"),  # 127.0.0.1 as one decimal number
        ("http://0x7f.1/", "loopback"),  # hexadecimal, short form
        ("http://0177.0.0.1/", "loopback"),  # octal
        ("http://127.1/", "loopback"),
        ("http://[::ffff:7f00:1]/", "loopback"),
        ("http://0/", "unspecified"),
        ("http://localhost:8080/x.png", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ],
)
def test_numeric_host_forms_are_resolved_before_they_are_judged(url: str, kind: str) -> None:
    with pytest.raises(LinkRefusedError, match=f"a {kind} address.*allowed_private_origins"):
        FetchPolicy().check(url)


def test_a_refusal_shows_the_link_without_its_signature_and_fails_without_retry() -> None:
    with pytest.raises(LinkRefusedError) as refused:
        FetchPolicy().check("http://169.254.169.254/creds?X-Amz-Signature=secret")
    assert "secret" not in str(refused.value)
    assert "http://169.254.169.254/creds resolves to 169.254.169.254" in str(refused.value)
    assert type(airflow_outcome(refused.value)).__name__ == "AirflowFailException"


def test_origins_compare_scheme_host_and_port_with_default_ports() -> None:
    assert Origin.of("HTTP://Emulator.Local/x?y") == Origin("http", "emulator.local", 80)
    assert Origin.of("https://h") == Origin.of("https://h:443/") != Origin.of("http://h:443")
    assert Origin.of("http://[::1]:9000/a") == Origin("http", "::1", 9000)
    assert str(Origin("http", "::1", 9000)) == "http://[::1]:9000"
    assert parse_origins(" http://10.0.0.5:9000, https://minio.internal ,") == {
        Origin("http", "10.0.0.5", 9000),
        Origin("https", "minio.internal", 443),
    }


@pytest.mark.parametrize("entry", ["ftp://10.0.0.5", "10.0.0.5:9000", "http://10.0.0.5:9000/bucket", "http://h/?q"])
def test_an_entry_that_is_no_origin_is_refused_naming_the_setting(entry: str) -> None:
    with pytest.raises(GenMediaValidationError, match=r"\[genmedia\] allowed_private_origins"):
        parse_origins(entry)


def test_the_policy_reads_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__GENMEDIA__ALLOWED_PRIVATE_ORIGINS", "http://10.0.0.5:9000")
    policy = FetchPolicy.for_connection("http://127.0.0.1:8085")
    assert policy.trusts(Origin.of("http://127.0.0.1:8085/v3/files/a.png"))
    assert policy.trusts(Origin.of("http://10.0.0.5:9000/a.png"))
    assert not policy.trusts(Origin.of("http://127.0.0.1:8086/a.png"))
    assert not policy.trusts(Origin.of("https://127.0.0.1:8085/a.png"))


def test_only_http_links_are_fetched() -> None:
    with pytest.raises(GenMediaValidationError, match="only http"):
        FetchPolicy().check("file:///etc/passwd")


# -- against a server of the test's own ------------------------------------------------------------------------


def trusting(server: HTTPServer, **kwargs: object) -> FetchPolicy:
    return FetchPolicy(allowed=parse_origins(server.url_for("/")), **kwargs)  # type: ignore[arg-type]


def test_a_loopback_server_is_not_reached_unless_its_origin_is_trusted(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a.png").respond_with_data(b"png")
    with SafeSession(FetchPolicy()) as session, pytest.raises(LinkRefusedError, match="loopback"):
        session.get(httpserver.url_for("/a.png"))
    assert len(httpserver.log) == 0
    own = FetchPolicy(own=Origin.of(httpserver.url_for("/")))
    for policy in (own, trusting(httpserver)):
        with SafeSession(policy) as session:
            assert session.get(httpserver.url_for("/a.png")).content == b"png"
    assert len(httpserver.log) == 2


def test_the_request_goes_to_the_address_resolved_once(httpserver: HTTPServer) -> None:
    """A resolver that would answer a private address the second time is asked once: the connection goes to the
    address checked, and the host name stays in the Host header."""
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])
    asked: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return next(answers)

    httpserver.expect_request("/a.png", headers={"Host": f"media.test:{httpserver.port}"}).respond_with_data(b"ok")
    policy = FetchPolicy(allowed=parse_origins(f"http://media.test:{httpserver.port}"), resolver=resolver)
    with SafeSession(policy) as session:
        response = session.get(f"http://media.test:{httpserver.port}/a.png")
    assert (response.status_code, response.content) == (200, b"ok")
    assert asked == [("media.test", httpserver.port)]
    assert len(httpserver.log) == 1


def test_each_redirect_hop_is_checked_before_it_is_fetched(httpserver: HTTPServer) -> None:
    target = HTTPServer(host="127.0.0.1", port=0)
    target.start()
    try:
        target.expect_request("/secret").respond_with_data(b"secret")
        httpserver.expect_request("/a.png").respond_with_data(
            b"", status=302, headers={"Location": target.url_for("/secret")}
        )
        with SafeSession(trusting(httpserver)) as session, pytest.raises(LinkRefusedError, match="loopback"):
            session.get(httpserver.url_for("/a.png"))
        assert (len(httpserver.log), len(target.log)) == (1, 0)
        both = FetchPolicy(allowed=parse_origins(f"{httpserver.url_for('/')},{target.url_for('/')}"))
        with SafeSession(both) as session:
            assert session.get(httpserver.url_for("/a.png")).content == b"secret"
        assert (len(httpserver.log), len(target.log)) == (2, 1)
    finally:
        target.stop()


def test_a_redirect_to_169_254_169_254_is_refused_before_any_connect(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a.png").respond_with_data(
        b"", status=307, headers={"Location": "http://169.254.169.254/latest/meta-data/iam"}
    )
    with SafeSession(trusting(httpserver)) as session, pytest.raises(LinkRefusedError, match="link-local"):
        session.get(httpserver.url_for("/a.png"))


def test_a_redirect_to_another_scheme_is_refused_as_a_validation_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a.png").respond_with_data(b"", status=302, headers={"Location": "file:///etc/passwd"})
    with SafeSession(trusting(httpserver)) as session, pytest.raises(GenMediaValidationError, match="not file://"):
        session.get(httpserver.url_for("/a.png"))


def test_at_most_five_redirects_are_followed(httpserver: HTTPServer) -> None:
    for hop in range(MAX_REDIRECTS):
        httpserver.expect_request(f"/{hop}").respond_with_data(b"", status=302, headers={"Location": f"/{hop + 1}"})
    httpserver.expect_request(f"/{MAX_REDIRECTS}").respond_with_data(b"end")
    with SafeSession(trusting(httpserver)) as session:
        assert session.get(httpserver.url_for("/0")).content == b"end"
    httpserver.clear_log()
    httpserver.expect_request("/from-1").respond_with_data(b"", status=302, headers={"Location": "/0"})
    with SafeSession(trusting(httpserver)) as session, pytest.raises(LinkRefusedError, match="more than 5 redirects"):
        session.get(httpserver.url_for("/from-1"))
    assert len(httpserver.log) == MAX_REDIRECTS + 1


@pytest.fixture
def tls_server() -> Iterator[tuple[HTTPServer, trustme.CA]]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("media.test").configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    yield server, ca
    server.stop()


def test_tls_keeps_the_host_name_for_sni_and_the_certificate(
    tls_server: tuple[HTTPServer, trustme.CA], tmp_path: Path
) -> None:
    server, ca = tls_server
    server.expect_request("/a.png").respond_with_data(b"tls")
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    pinned = {"media.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}
    policy = FetchPolicy(
        allowed=parse_origins(f"https://media.test:{server.port},https://other.test:{server.port}"),
        resolver=lambda host, port: pinned[host],
    )
    with SafeSession(policy) as session:
        assert session.get(f"https://media.test:{server.port}/a.png", verify=str(bundle)).content == b"tls"
        with pytest.raises(Exception, match=r"other\.test"):  # the certificate names media.test only
            session.get(f"https://other.test:{server.port}/a.png", verify=str(bundle))
    assert len(server.log) == 1
