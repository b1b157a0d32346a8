"""The Novita operators' request building (pure logic; the HTTP path runs in tests/system)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator, NovitaTaskOperator, output_size


def image_file(tmp_path: Path, width: int, height: int, name: str = "in.png") -> Path:
    path = tmp_path / name
    Image.new("1", (width, height)).save(path)
    return path


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((512, 512), (512, 512)),
        ((1000, 750), (1000, 752)),
        ((4000, 3000), (2048, 1536)),
        ((100, 50), (256, 128)),
        ((3000, 100), (2048, 128)),
    ],
)
def test_output_size_fits_novitas_range(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert output_size(*size) == expected


def test_img2img_body_uses_the_vendors_field_names(tmp_path: Path) -> None:
    operator = NovitaImg2ImgOperator(
        task_id="restyle",
        image=str(image_file(tmp_path, 640, 480)),
        prompt="a watercolor",
        model_name="sd_xl_base_1.0.safetensors",
        seed=7,
        loras=[{"model_name": "more_details", "strength": 0.5}],
        response_image_type="jpeg",
        enable_nsfw_detection=True,
        nsfw_detection_level=1,
    )
    path, body = operator.build_request()
    assert path == "/v3/async/img2img"
    assert body["extra"] == {"response_image_type": "jpeg", "enable_nsfw_detection": True, "nsfw_detection_level": 1}
    request = body["request"]
    assert (request["width"], request["height"], request["seed"], request["image_num"]) == (640, 480, 7, 1)
    assert base64.b64decode(request["image_base64"]) == (tmp_path / "in.png").read_bytes()
    assert get_api("novita").prepare(body, path).body == body


def test_too_large_images_are_refused_unless_fitted(tmp_path: Path) -> None:
    path = image_file(tmp_path, 4200, 4200)
    arguments = {"task_id": "t", "image": path, "prompt": "p", "model_name": "m"}
    with pytest.raises(GenMediaValidationError, match=r"image: .*16 megapixels.*fit_image=True"):
        NovitaImg2ImgOperator(**arguments).prepare()
    body = NovitaImg2ImgOperator(**arguments, fit_image=True).prepare().body
    with Image.open(io.BytesIO(base64.b64decode(body["request"]["image_base64"]))) as fitted:
        assert fitted.width * fitted.height <= 16 * 1024 * 1024
    assert (body["request"]["width"], body["request"]["height"]) == (2048, 2048)


def test_unreadable_image_names_the_field(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(GenMediaValidationError, match="image: is not a readable image"):
        NovitaImg2ImgOperator(task_id="t", image=broken, prompt="p", model_name="m").build_request()


def test_task_operator_accepts_endpoint_forms() -> None:
    for endpoint in ("txt2video", "/txt2video", "/v3/async/txt2video"):
        path, body = NovitaTaskOperator(task_id="t", endpoint=endpoint, body={"x": 1}).build_request()
        assert (path, body) == ("/v3/async/txt2video", {"x": 1})
