"""Bad operator input fails before any request: the emulator sees no submit, and the message names the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from PIL import Image
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia.operators.novita import NovitaImg2ImgOperator, NovitaTaskOperator
from tests.emulator_fixtures import EmulatorControl


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.new("RGB", (256, 256)).save(path)
    return path


BAD_ARGUMENTS: list[tuple[dict[str, Any], str]] = [
    ({"width": 127}, "request.width"),
    ({"height": 2049}, "request.height"),
    ({"image_num": 9}, "request.image_num"),
    ({"steps": 101}, "request.steps"),
    ({"guidance_scale": 31}, "request.guidance_scale"),
    ({"sampler_name": "Euler x"}, "request.sampler_name"),
    ({"prompt": ""}, "request.prompt"),
    ({"seed": -5}, "request.seed"),
    ({"strength": 2}, "request.strength"),
    ({"clip_skip": 13}, "request.clip_skip"),
    ({"loras": [{"model_name": "l", "strength": 0.5}] * 6}, "request.loras"),
    ({"embeddings": [{"model_name": "e"}] * 6}, "request.embeddings"),
    ({"response_image_type": "bmp"}, "extra.response_image_type"),
    ({"nsfw_detection_level": 5}, "extra.nsfw_detection_level"),
    ({"webhook": {"url": "not-a-url"}}, "extra.webhook.url"),
    ({"image": "missing/in.png"}, "image"),
    ({"image": b"not an image"}, "image: is not a readable image"),
]


@pytest.mark.parametrize(("arguments", "field"), BAD_ARGUMENTS)
def test_bad_input_fails_before_any_submit(
    arguments: dict[str, Any], field: str, image: Path, emulator_connections: EmulatorControl
) -> None:
    operator = NovitaImg2ImgOperator(
        task_id="img2img", **{"image": image, "prompt": "p", "model_name": "m", **arguments}
    )
    with pytest.raises(AirflowFailException, match="nothing was sent") as raised:
        operator.execute({})
    assert field in str(raised.value)
    assert emulator_connections.stats()["submit_requests"]["novita"] == 0


def test_an_image_over_16_megapixels_needs_fit_image(tmp_path: Path, emulator_connections: EmulatorControl) -> None:
    big = tmp_path / "big.png"
    Image.new("1", (4097, 4097)).save(big)
    with pytest.raises(AirflowFailException, match=r"image: .*16 megapixels"):
        NovitaImg2ImgOperator(task_id="t", image=big, prompt="p", model_name="m").execute({})
    assert emulator_connections.stats()["submit_requests"]["novita"] == 0


def test_a_generic_endpoint_body_must_be_an_object(emulator_connections: EmulatorControl) -> None:
    with pytest.raises(AirflowFailException, match="body: must be a JSON object"):
        NovitaTaskOperator(task_id="t", endpoint="txt2video", body=["not", "an", "object"]).execute({})  # type: ignore[arg-type]
    assert emulator_connections.stats()["submit_requests"]["novita"] == 0


@pytest.mark.parametrize(
    ("link", "kind"),
    [("{server}/in.png?token=secret", "loopback"), ("http://169.254.169.254/latest/in.png?token=secret", "link-local")],
)
def test_an_input_link_to_a_private_address_is_refused_before_any_request(
    link: str, kind: str, httpserver: HTTPServer, emulator_connections: EmulatorControl
) -> None:
    httpserver.expect_request("/in.png").respond_with_data(b"internal bytes")
    url = link.format(server=httpserver.url_for("/").rstrip("/"))
    operator = NovitaImg2ImgOperator(task_id="img2img", image=url, prompt="p", model_name="m")
    with pytest.raises(
        AirflowFailException, match=rf"nothing was sent.*a {kind} address.*allowed_private_origins"
    ) as raised:
        operator.execute({})
    assert "secret" not in str(raised.value)
    assert len(httpserver.log) == 0
    assert emulator_connections.stats()["submit_requests"]["novita"] == 0
