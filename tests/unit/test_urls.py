"""Which values are http(s) links, and how a signed link is shown without its secrets."""

from __future__ import annotations

import pytest

from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.urls import check_http_url, is_http_url, public_url


@pytest.mark.parametrize(
    "value",
    [
        "https://cdn.example/out/0.png?X-Amz-Signature=abc",
        "http://127.0.0.1:8080/a.mp4",
        "HTTPS://cdn.example/x",
        " http://h/x\n",
    ],
)
def test_absolute_http_and_https_urls_are_links(value: str) -> None:
    assert is_http_url(value)


@pytest.mark.parametrize(
    "value",
    [
        "ftp://host/a.png",
        "file:///tmp/a.png",
        "s3://bucket/a.png",
        "http:///no-host",
        "cdn.example/a.png",
        "",
        None,
        42,
    ],
)
def test_anything_else_is_not_a_link(value: object) -> None:
    assert not is_http_url(value)


def test_a_refused_url_names_the_field_and_hides_its_signature() -> None:
    with pytest.raises(GenMediaValidationError, match=r"only http\(s\) links are downloaded, not s3://") as raised:
        check_http_url("s3://bucket/a.png?X-Amz-Signature=secret", "outputs[0].url")
    assert raised.value.field == "outputs[0].url"
    assert "secret" not in str(raised.value)
    with pytest.raises(GenMediaValidationError, match="not a URL without a scheme"):
        check_http_url("bucket/a.png")
    check_http_url("https://cdn.example/a.png")


def test_the_public_url_drops_query_fragment_and_credentials() -> None:
    assert public_url("https://user:pw@cdn.example/out/0.png?Signature=abc&Expires=1#top") == (
        "https://cdn.example/out/0.png"
    )
    assert public_url("http://127.0.0.1:8080/a.mp4") == "http://127.0.0.1:8080/a.mp4"
