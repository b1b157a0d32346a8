from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath
from PIL import Image
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.inputs import read_image, shown_image


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
