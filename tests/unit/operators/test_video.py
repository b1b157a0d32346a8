"""The video operators: request building per route, image handling, validation naming the field, and each vendor's
failure verdict (pure logic; the HTTP path runs in tests/system/test_video.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from PIL import Image

from airflow_provider_genmedia.events import TaskEvent
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.operators.base import GenMediaSubmitOperator
from airflow_provider_genmedia.operators.video import AvatarVideoOperator, BailianVideoOperator, JimengVideoOperator

IMAGE_URL = "https://example.com/first-frame.png"
AVATAR_URL = "https://example.com/face.png"
AUDIO_URL = "https://example.com/hello.mp3"


@pytest.fixture
def jpeg_file(tmp_path: Path) -> Path:
    path = tmp_path / "frame.jpg"
    Image.new("RGB", (64, 48), (20, 90, 160)).save(path, "JPEG")
    return path


def validated(operator: GenMediaSubmitOperator) -> tuple[str, dict[str, Any]]:
    """The route and the body the base would POST, checked once by the API's adapter as the base does."""
    submission = operator.prepare()
    return submission.path, submission.body


def rejection(operator: GenMediaSubmitOperator) -> str:
    """The message of the validation error the operator raises before anything is sent."""
    with pytest.raises(GenMediaValidationError) as raised:
        validated(operator)
    return str(raised.value)


# Jimeng


def test_jimeng_text2video_body() -> None:
    operator = JimengVideoOperator(task_id="t", prompt="a cat surfing", aspect_ratio="9:16", seed=5)
    assert validated(operator) == (
        "/task/jimeng/text2video",
        {"prompt": "a cat surfing", "seed": 5, "aspect_ratio": "9:16"},
    )


def test_jimeng_sends_an_image_url_as_image_urls() -> None:
    path, body = validated(JimengVideoOperator(task_id="t", prompt="it waves", image=f" {IMAGE_URL} "))
    assert path == "/task/jimeng/image2video"
    assert body == {"prompt": "it waves", "seed": -1, "aspect_ratio": "16:9", "image_urls": [IMAGE_URL]}


@pytest.mark.parametrize("given", ["path", "bytes", "base64"])
def test_jimeng_sends_other_images_as_base64(jpeg_file: Path, given: str) -> None:
    data = jpeg_file.read_bytes()
    image = {"path": str(jpeg_file), "bytes": data, "base64": base64.b64encode(data).decode()}[given]
    path, body = validated(JimengVideoOperator(task_id="t", prompt="it waves", image=image, aspect_ratio="9:21"))
    assert path == "/task/jimeng/image2video"
    assert "image_urls" not in body
    assert [base64.b64decode(blob) for blob in body["binary_data_base64"]] == [data]


def test_jimeng_limits_name_the_field() -> None:
    assert rejection(JimengVideoOperator(task_id="t", prompt="x" * 151)).startswith("prompt: ")
    assert "aspect_ratio 9:21 is not allowed" in rejection(
        JimengVideoOperator(task_id="t", prompt="x", aspect_ratio="9:21")
    )
    assert rejection(JimengVideoOperator(task_id="t", prompt="x", aspect_ratio="2:1")).startswith("aspect_ratio: ")
    assert rejection(JimengVideoOperator(task_id="t", prompt="x", seed=-2)).startswith("seed: ")


def test_an_unreadable_image_names_the_image_argument(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert rejection(JimengVideoOperator(task_id="t", prompt="x", image=text)) == "image: is not a readable image"
    missing = BailianVideoOperator(task_id="t", model="wan2.6-i2v", prompt="x", image="/no/such.png", resolution="720P")
    assert rejection(missing) == "image: '/no/such.png' is not an existing file"


# Bailian


def test_bailian_text2video_body_nests_the_vendors_fields() -> None:
    operator = BailianVideoOperator(
        task_id="t",
        model="wan2.6-t2v",
        prompt="a red kite",
        negative_prompt="rain",
        audio_url=AUDIO_URL,
        size="1920*1080",
        duration=10,
        prompt_extend=True,
        shot_type="multi",
        seed=42,
        watermark=False,
    )
    assert validated(operator) == (
        "/task/bailian/text2video",
        {
            "model": "wan2.6-t2v",
            "input": {"prompt": "a red kite", "negative_prompt": "rain", "audio_url": AUDIO_URL},
            "parameters": {
                "size": "1920*1080",
                "duration": 10,
                "prompt_extend": True,
                "shot_type": "multi",
                "seed": 42,
                "watermark": False,
            },
        },
    )


def test_bailian_image2video_takes_the_image_url_as_given() -> None:
    operator = BailianVideoOperator(
        task_id="t", model="wan2.6-i2v-flash", prompt="it flies", image=IMAGE_URL, resolution="720P", audio=False
    )
    path, body = validated(operator)
    assert path == "/task/bailian/image2video"
    assert body["input"] == {"prompt": "it flies", "img_url": IMAGE_URL}
    assert body["parameters"] == {"resolution": "720P", "duration": 5, "audio": False}


def test_bailian_sends_a_local_image_as_a_data_uri(jpeg_file: Path) -> None:
    operator = BailianVideoOperator(
        task_id="t", model="wan2.6-i2v", prompt="it flies", image=jpeg_file, resolution="720P"
    )
    _, body = validated(operator)
    prefix, _, data = body["input"]["img_url"].partition(",")
    assert prefix == "data:image/jpeg;base64"
    assert base64.b64decode(data) == jpeg_file.read_bytes()


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"model": "wan2.6-t2v", "size": "1280*720", "duration": 7}, "parameters.duration 7 is not one of [5, 10, 15]"),
        ({"model": "wan2.5-t2v-preview", "size": "1280*720", "duration": 15}, "parameters.duration 15 is not one of"),
        ({"model": "wan2.6-t2v", "size": "832*480"}, "parameters.size 832*480 is not one of"),
        ({"model": "wan2.6-t2v", "resolution": "720P"}, "takes parameters.size"),
        (
            {"model": "wan2.6-t2v", "size": "1280*720", "image": IMAGE_URL},
            "text-to-video model: input.img_url is not",
        ),
        ({"model": "wan2.6-i2v", "resolution": "720P"}, "input.img_url is required by wan2.6-i2v"),
        ({"model": "wan2.6-i2v", "image": IMAGE_URL, "resolution": "480P"}, "parameters.resolution 480P is not one of"),
        ({"model": "wan2.6-i2v", "image": IMAGE_URL, "resolution": "720P", "audio": False}, "parameters.audio is only"),
        (
            {"model": "wan2.6-t2v", "size": "1280*720", "shot_type": "multi", "prompt_extend": False},
            "parameters.shot_type",
        ),
        ({"model": "wan2.6-t2v", "size": "1280*720", "seed": -1}, "parameters.seed: "),
        ({"model": "wan2.6-t2v", "size": "1280*720", "audio_url": "hello.mp3"}, "input.audio_url: "),
    ],
)
def test_bailian_model_limits_name_the_field(arguments: dict[str, Any], expected: str) -> None:
    assert expected in rejection(BailianVideoOperator(task_id="t", prompt="a red kite", **arguments))


def test_bailian_routes_unknown_models_by_the_image() -> None:
    operator = BailianVideoOperator(task_id="t", model="wan9-i2v", prompt="x", image=IMAGE_URL, resolution="720P")
    assert validated(operator)[0] == "/task/bailian/image2video"


# Avatar


@pytest.mark.parametrize(
    "voice",
    [
        {"audio_url": AUDIO_URL},
        {"create_voice": {"audio_url": AUDIO_URL, "language": "en", "text": "Hello there"}},
        {"use_voice": {"voice_engine_id": "nina", "language": "zh", "text": "你好"}},
    ],
)
def test_avatar_body_takes_one_voice_source(voice: dict[str, Any]) -> None:
    path, body = validated(AvatarVideoOperator(task_id="t", avatar_url=AVATAR_URL, no_watermark=True, **voice))
    assert (path, body) == ("/avatar/generation", {"avatar_url": AVATAR_URL, **voice, "no_watermark": True})


def test_avatar_needs_exactly_one_voice_source() -> None:
    expected = "give exactly one of audio_url, create_voice, use_voice"
    assert f"{expected} (got none)" in rejection(AvatarVideoOperator(task_id="t", avatar_url=AVATAR_URL))
    two = AvatarVideoOperator(
        task_id="t",
        avatar_url=AVATAR_URL,
        audio_url=AUDIO_URL,
        use_voice={"voice_engine_id": "nina", "language": "en", "text": "hi"},
    )
    assert f"{expected} (got audio_url, use_voice)" in rejection(two)
    bad_language = AvatarVideoOperator(
        task_id="t", avatar_url=AVATAR_URL, use_voice={"voice_engine_id": "nina", "language": "de", "text": "hi"}
    )
    assert rejection(bad_language).startswith("use_voice.language: ")
    assert rejection(AvatarVideoOperator(task_id="t", avatar_url="face.png", audio_url=AUDIO_URL)).startswith(
        "avatar_url:"
    )


# Vendor failures: a task the vendor refused fails the Airflow task without retry, with the vendor's reason.


@pytest.mark.parametrize(
    ("operator", "body", "reason"),
    [
        (
            JimengVideoOperator(task_id="t", prompt="x"),
            {"code": 50511, "data": None, "message": "Post Img Risk Not Pass", "status": 50511},
            "50511 Post Img Risk Not Pass",
        ),
        (
            JimengVideoOperator(task_id="t", prompt="x"),
            {"code": 50412, "data": None, "message": "Text Risk Not Pass", "status": 50412},
            "50412 Text Risk Not Pass",
        ),
        (
            BailianVideoOperator(task_id="t", model="wan2.6-t2v", prompt="x", size="1280*720"),
            {"output": {"task_id": "b-1", "task_status": "FAILED", "code": "DataInspectionFailed", "message": "risky"}},
            "DataInspectionFailed: risky",
        ),
        (
            BailianVideoOperator(task_id="t", model="wan2.6-t2v", prompt="x", size="1280*720"),
            {"output": {"task_id": "b-1", "task_status": "UNKNOWN"}},
            "expired",
        ),
        (
            AvatarVideoOperator(task_id="t", avatar_url=AVATAR_URL, audio_url=AUDIO_URL),
            {"id": "a-1", "web_work_status": -1, "work_video_path": ""},
            "web_work_status -1",
        ),
    ],
    ids=["jimeng-50511", "jimeng-50412", "bailian-failed", "bailian-unknown", "avatar-negative"],
)
def test_vendor_verdicts_fail_without_retry(
    operator: GenMediaSubmitOperator, body: dict[str, Any], reason: str
) -> None:
    api = operator.api
    result = api.task_failure("b-1", body) or api.parse_result("b-1", body)
    with pytest.raises(AirflowFailException, match=reason):
        operator.execute_complete({}, TaskEvent.completed(result).to_payload())
