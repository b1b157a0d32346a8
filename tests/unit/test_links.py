"""The extra links' pure parts: which URL each link gives, and when it gives none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow_provider_genmedia.links import first_output_url, object_console_url, published_links

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SIGNED = "https://vendor.example/out/0.png?Expires=1&Signature=abc"


def output(url: str = SIGNED, expires_at: datetime | None = NOW + timedelta(minutes=5)) -> dict[str, object]:
    return {"url": url, "kind": "image", "expires_at": expires_at.isoformat() if expires_at else None}


def test_the_first_output_is_linked_while_its_signed_url_is_valid() -> None:
    assert first_output_url({"outputs": [output(), output("https://other")]}, NOW) == SIGNED
    assert first_output_url({"outputs": [output(expires_at=None)]}, NOW) == SIGNED  # no known lifetime
    assert first_output_url({"outputs": [output(expires_at=NOW)]}, NOW) == ""
    assert first_output_url({"outputs": [output(expires_at=NOW - timedelta(seconds=1))]}, NOW) == ""


def test_no_first_output_link_without_an_http_output() -> None:
    no_host = {"outputs": [output("http:///x.png")]}
    for result in (None, "task-id", {}, {"outputs": []}, {"outputs": [output("file:///tmp/x.png")]}, no_host):
        assert first_output_url(result, NOW) == ""


def test_s3_objects_and_folders_open_in_the_aws_console() -> None:
    assert (
        object_console_url("s3://media-bucket/shots/novita_t1.manifest.json", region="eu-west-1")
        == "https://s3.console.aws.amazon.com/s3/object/media-bucket?region=eu-west-1&prefix=shots/novita_t1.manifest.json"
    )
    assert (
        object_console_url("s3://media-bucket/shots/2026 11", folder=True)
        == "https://s3.console.aws.amazon.com/s3/buckets/media-bucket?prefix=shots/2026%2011/"
    )
    assert (
        object_console_url("s3://media-bucket", folder=True)
        == "https://s3.console.aws.amazon.com/s3/buckets/media-bucket"
    )


def test_no_console_link_where_there_is_no_console_page() -> None:
    assert object_console_url("file:///tmp/media/a.png") is None
    assert object_console_url("gs://bucket/a.png") is None
    assert object_console_url("s3://bucket/a.png", endpoint_url="http://minio:9000") is None
    assert object_console_url("s3://bucket", folder=False) is None
    assert object_console_url(None) is None


def test_published_links() -> None:
    published = {
        "destination": "s3://b/p",
        "manifest": "s3://b/p/x.manifest.json",
        "files": [{"uri": "s3://b/p/x.png"}],
    }
    links = published_links(published, region=None, endpoint_url=None)
    assert links == {
        "files": "https://s3.console.aws.amazon.com/s3/buckets/b?prefix=p/",
        "manifest": "https://s3.console.aws.amazon.com/s3/object/b?prefix=p/x.manifest.json",
    }
    nothing = {"destination": "s3://b/p", "manifest": None, "files": []}
    assert published_links(nothing, region=None, endpoint_url=None) == {"files": None, "manifest": None}
