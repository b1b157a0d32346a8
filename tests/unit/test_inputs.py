from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath
from PIL import Image
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.inputs import MAX_DOWNLOAD_BYTES, read_image, shown_image
from airflow_provider_genmedia.safe_fetch import FetchPolicy, Origin


def png(width: int = 40, height: int = 30, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.usefixtures("trusted_httpserver")
def test_every_accepted_form_reads_the_same_bytes(tmp_path: Path, httpserver: HTTPServer) -> None:
    data = png()
    path = tmp_path / "in.png"
    path.write_bytes(data)
    httpserver.expect_request("/in.png").respond_with_data(data, content_type="image/png")
    encoded = base64.b64encode(data).decode()
    for value in (
        data,
        bytearray(data),
        path,
        str(path),
        f"file://{path}",
        ObjectStoragePath(f"file://{path}"),
        httpserver.url_for("/in.png"),
        encoded,
        f"data:image/png;base64,{encoded}",
    ):
        assert read_image(value) == data, value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("photos/missing.png", "not an existing file"),
        ("definitely not an image, nor base64 !", r"not a readable file, an http\(s\) URL or base64"),
        (12345, "must be a path"),
    ],
)
def test_unreadable_inputs_name_the_field(value: object, message: str) -> None:
    with pytest.raises(GenMediaValidationError, match=message) as raised:
        read_image(value, field="image")
    assert raised.value.field == "image"


def test_a_failed_download_is_a_validation_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/gone.png").respond_with_data("", status=404)
    with pytest.raises(GenMediaValidationError, match="could not be downloaded"):
        read_image(httpserver.url_for("/gone.png"))


def test_rendered_templates_show_image_references_and_elide_image_data(tmp_path: Path) -> None:
    path = tmp_path / "shot.png"
    Image.new("RGB", (8, 8)).save(path)
    data = path.read_bytes()
    encoded = base64.b64encode(data).decode()
    for reference in (str(path), "https://example.com/shot.png", "s3://bucket/shot.png", "missing/shot.png", None):
        assert shown_image(reference) == reference
    assert shown_image(data) == f"<{len(data)} bytes elided>"
    assert shown_image(encoded) == f"<base64: {len(encoded)} chars elided>"
    assert shown_image(f"data:image/png;base64,{encoded}").startswith("<base64: ")
    long_base64 = base64.b64encode(b"\x00" * 3000).decode()  # once read as a path: "File name too long"
    assert shown_image(long_base64).startswith("<base64: ")
    assert read_image(long_base64) == b"\x00" * 3000


@pytest.mark.usefixtures("trusted_httpserver")
def test_an_input_without_a_length_is_cut_off_at_the_limit_while_streaming(httpserver: HTTPServer) -> None:
    chunk = b"\0" * (1024 * 1024)
    sent: list[int] = []

    def endless(_: Request) -> Response:
        def body() -> Iterator[bytes]:
            for _ in range(MAX_DOWNLOAD_BYTES // len(chunk) + 16):
                sent.append(len(chunk))
                yield chunk

        return Response(body(), mimetype="image/png")  # no Content-Length: only the count while streaming can stop it

    httpserver.expect_request("/endless.png").respond_with_handler(endless)
    with pytest.raises(GenMediaValidationError, match=f"exceeds the limit of {MAX_DOWNLOAD_BYTES} bytes"):
        read_image(httpserver.url_for("/endless.png"))
    assert sum(sent) < MAX_DOWNLOAD_BYTES + 16 * len(chunk)  # the server was not read to its end


def test_an_input_link_to_loopback_is_refused_unless_its_origin_is_trusted(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/in.png").respond_with_data(png(), content_type="image/png")
    with pytest.raises(GenMediaValidationError, match=r"^image: could not be downloaded: .*a loopback address"):
        read_image(httpserver.url_for("/in.png"))
    assert len(httpserver.log) == 0
    own = FetchPolicy(own=Origin.of(httpserver.url_for("/")))
    assert read_image(httpserver.url_for("/in.png"), fetch_policy=own) == png()
