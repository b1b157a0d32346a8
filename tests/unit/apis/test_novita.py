from __future__ import annotations

import base64
import copy
import io
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.apis.novita import MAX_IMAGE_BYTES, Img2ImgBody, NovitaApi
from airflow_provider_genmedia.exceptions import GenMediaAPIError, GenMediaValidationError
from airflow_provider_genmedia.results import NsfwVerdict, TaskStatus
from tests.unit.apis.conftest import RECEIVED_AT, png_base64, seed_example

API = NovitaApi()
IMG2IMG = "/v3/async/img2img"
PLACEHOLDER = "{{Base64 encode image}}"


def with_real_images(value: Any, image: str) -> Any:
    """An img2img page's example body with its image placeholders replaced by a real image."""
    if isinstance(value, dict):
        return {key: with_real_images(item, image) for key, item in value.items()}
    if isinstance(value, list):
        return [with_real_images(item, image) for item in value]
    return image if value == PLACEHOLDER else value


# -- results: every example of the img2img and task-result pages (docs/vendor-sources.md) --------------------


@pytest.mark.parametrize(
    ("example", "seed", "images", "nsfw"),
    [
        ("novita_img2img_1_result", 1434608307, 1, None),
        ("novita_img2img_2_result", 632855931, 1, None),
        ("novita_img2img_3_result", 170871295, 1, None),
        ("novita_img2img_4_result", 3183986171, 4, NsfwVerdict(checked=True, confidence=0)),
        ("novita_task_result", 158881667, 1, None),
    ],
)
def test_seed_results_parse(example: str, seed: int, images: int, nsfw: NsfwVerdict | None) -> None:
    body = seed_example(example)
    result = API.parse_result(body["task"]["task_id"], body, received_at=RECEIVED_AT)
    assert result.status is TaskStatus.SUCCEEDED
    assert result.seed == seed
    assert result.progress == 100
    assert result.reason is None
    assert len(result.outputs) == images
    for output, item in zip(result.outputs, body["images"], strict=True):
        assert output.url == item["image_url"]
        assert output.kind == "image"
        assert output.format == "jpeg"
        assert output.expires_at == RECEIVED_AT + timedelta(seconds=3600)
        assert output.nsfw == nsfw
    assert result.raw == body


def test_seed_submit_answers_use_the_legacy_envelope() -> None:
    for number in range(1, 5):
        body = seed_example(f"novita_img2img_{number}_submit")
        assert API.parse_submit(body) == body["data"]["task_id"]
    assert API.parse_submit({"task_id": "abc"}) == "abc"
    with pytest.raises(GenMediaAPIError, match="holds no task id") as raised:
        API.parse_submit({"code": 0, "data": {}})
    assert raised.value.outcome_unknown  # the vendor accepted the body: the job may exist


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_seed_request_examples_validate(number: int) -> None:
    body = with_real_images(seed_example(f"novita_img2img_{number}_request"), png_base64())
    assert API.prepare(body, IMG2IMG).body == body


# -- results: every documented state ------------------------------------------------------------------------


def task_body(status: str, **task: Any) -> dict[str, Any]:
    return {"task": {"task_id": "t1", "status": status, **task}, "images": [], "videos": []}


def test_queued_and_processing_with_progress_sent_as_strings() -> None:
    assert API.parse_result("t1", task_body("TASK_STATUS_QUEUED")).status is TaskStatus.QUEUED
    running = API.parse_result("t1", task_body("TASK_STATUS_PROCESSING", progress_percent="45", eta=12))
    assert (running.status, running.progress, running.eta_seconds) == (TaskStatus.RUNNING, 45, 12)


def test_failed_carries_the_reason() -> None:
    result = API.parse_result("t1", task_body("TASK_STATUS_FAILED", reason="ILLEGAL_PROMPT"))
    assert (result.status, result.reason) == (TaskStatus.FAILED, "ILLEGAL_PROMPT")


def test_unknown_status_is_not_terminal() -> None:
    result = API.parse_result("t1", task_body("TASK_STATUS_UNKNOWN"))
    assert result.status is TaskStatus.RUNNING


def test_videos_audios_and_nsfw_variants() -> None:
    body = task_body("TASK_STATUS_SUCCEED")
    body["extra"] = {"seed": "", "enable_nsfw_detection": True}
    body["images"] = [
        {"image_url": "https://x/1.png", "image_url_ttl": 3600, "image_type": "png", "nsfw_detection_result": {}},
        {"image_url": "https://x/2.png", "image_type": "png", "nsfw_detection_result": {"valid": False}},
        {
            "image_url": "https://x/3.png",
            "image_type": "png",
            "nsfw_detection_result": {"valid": True, "confidence": "88.5"},
        },
    ]
    body["videos"] = [{"video_url": "https://x/v.mp4", "video_url_ttl": "1800", "video_type": "mp4"}]
    body["audios"] = [{"audio_url": "https://x/a.wav", "audio_url_ttl": "60", "audio_type": "wav"}]
    result = API.parse_result("t1", body, received_at=RECEIVED_AT)
    assert result.seed is None
    assert [output.nsfw for output in result.outputs[:3]] == [
        None,
        NsfwVerdict(checked=False),
        NsfwVerdict(checked=True, confidence=88.5),
    ]
    assert result.outputs[1].expires_at is None
    video, audio = result.outputs[3:]
    assert (video.kind, video.format, video.expires_at) == ("video", "mp4", RECEIVED_AT + timedelta(seconds=1800))
    assert (audio.kind, audio.format, audio.nsfw) == ("audio", "wav", None)


def test_missing_optional_fields_are_tolerated() -> None:
    result = API.parse_result("t9", {"task": {"status": "TASK_STATUS_SUCCEED"}, "videos": None})
    assert (result.task_id, result.outputs, result.eta_seconds, result.seed) == ("t9", [], None, None)


def test_base64_never_lands_in_raw() -> None:
    blob = png_base64(300, 300)
    body = task_body("TASK_STATUS_SUCCEED")
    body["extra"] = {"debug_info": {"request_info": blob}}
    result = API.parse_result("t1", body)
    assert blob not in repr(result.raw)


def test_routes() -> None:
    adapter = get_api("novita")
    assert isinstance(adapter, NovitaApi)
    assert (adapter.name, adapter.conn_type, adapter.default_conn_id) == ("novita", "novita", "novita_default")
    assert get_api("novita") is adapter  # one adapter per API, cached
    assert API.result_path("a b/c") == "/v3/async/task-result?task_id=a%20b%2Fc"
    assert API.request_model("/v3/async/wan-t2v") is None
    assert API.prepare({"prompt": "x"}, "/v3/async/wan-t2v").body == {"prompt": "x"}
    for bad in ("/v3/async/", "/v3/async/task-result", "/v3/other", "/v3/async/a/b"):
        with pytest.raises(GenMediaValidationError, match="endpoint"):
            API.prepare({}, bad)


# -- request validation: every range and enum ---------------------------------------------------------------


def valid_body(image: str) -> dict[str, Any]:
    return {
        "extra": {"response_image_type": "png", "enable_nsfw_detection": True, "nsfw_detection_level": 2},
        "request": {
            "model_name": "sd_xl_base_1.0.safetensors",
            "prompt": "a cute dog",
            "width": 512,
            "height": 512,
            "image_num": 1,
            "steps": 20,
            "guidance_scale": 7.5,
            "sampler_name": "Euler a",
            "image_base64": image,
        },
    }


def test_the_valid_body_validates(image_b64: str) -> None:
    assert Img2ImgBody.model_validate(valid_body(image_b64))


def png_bytes_base64(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


LORA = {"model_name": "more_details", "strength": 0.5}
BAD_REQUESTS = [
    ("request.width", 127),
    ("request.width", 2049),
    ("request.height", 100),
    ("request.height", 4096),
    ("request.image_num", 0),
    ("request.image_num", 9),
    ("request.steps", 0),
    ("request.steps", 101),
    ("request.guidance_scale", 0.5),
    ("request.guidance_scale", 31),
    ("request.sampler_name", "Euler b"),
    ("request.prompt", ""),
    ("request.prompt", "x" * 1025),
    ("request.negative_prompt", "x" * 1025),
    ("request.seed", -2),
    ("request.clip_skip", 0),
    ("request.clip_skip", 13),
    ("request.strength", 1.5),
    ("request.loras", [LORA] * 6),
    ("request.loras", [{"model_name": "x", "strength": 1.5}]),
    ("request.embeddings", [{"model_name": "e"}] * 6),
    ("request.ip_adapters", [{"model_name": "ip-adapter_sd15.bin", "image_base64": "IMAGE", "strength": 1}] * 2),
    ("request.ip_adapters", [{"model_name": "ip-adapter_sd3.bin", "image_base64": "IMAGE", "strength": 1}]),
    ("request.controlnet", {"units": [{"model_name": "c", "image_base64": "IMAGE", "strength": 2}]}),
    (
        "request.controlnet",
        {"units": [{"model_name": "c", "image_base64": "IMAGE", "strength": 1, "preprocessor": "x"}]},
    ),
    ("request.controlnet", {"units": [{"model_name": "c", "image_base64": "IMAGE", "strength": 1, "guidance_end": 2}]}),
    ("request.hires_fix", {"target_width": 1024, "target_height": 1024}),
    ("request.image_base64", "not base64!"),
    ("request.image_base64", base64.b64encode(b"not an image").decode()),
    ("extra.response_image_type", "gif"),
    ("extra.response_video_type", "mp4"),
    ("extra.nsfw_detection_level", 3),
    ("extra.webhook", {"url": "ftp://example.com/hook"}),
    ("extra.webhook", {"url": "https://example.com/hook", "test_mode": {"enabled": True, "return_task_status": "X"}}),
    ("extra.custom_storage", {"aws_s3": {"region": "us-east-1", "bucket": "b"}}),
    ("extra.unknown_field", True),
]


@pytest.mark.parametrize(("field", "value"), BAD_REQUESTS)
def test_bad_values_are_rejected_naming_the_field(field: str, value: Any, image_b64: str) -> None:
    body = valid_body(image_b64)
    section, name = field.split(".")
    body[section][name] = copy.deepcopy(value)
    for unit in (body["request"].get("controlnet") or {}).get("units", []) + (body["request"].get("ip_adapters") or []):
        unit["image_base64"] = image_b64 if unit["image_base64"] == "IMAGE" else unit["image_base64"]
    with pytest.raises(GenMediaValidationError) as raised:
        API.prepare(body, IMG2IMG)
    assert field in str(raised.value)


def test_image_over_16_megapixels_is_rejected(image_b64: str) -> None:
    body = valid_body(png_bytes_base64(4097, 4097))
    with pytest.raises(GenMediaValidationError, match=r"request.image_base64: .*16 megapixels"):
        API.prepare(body, IMG2IMG)
    body["request"]["image_base64"] = png_bytes_base64(4096, 4096)
    assert API.prepare(body, IMG2IMG).body


def test_image_over_10_mb_is_rejected() -> None:
    blob = base64.b64encode(b"\0" * (MAX_IMAGE_BYTES + 1)).decode()
    with pytest.raises(GenMediaValidationError, match=r"request.image_base64: .*10 MB"):
        API.prepare(valid_body(blob), IMG2IMG)


def test_txt2img_body_has_its_own_fields(image_b64: str) -> None:
    body = valid_body(image_b64)
    del body["request"]["image_base64"]
    body["request"]["hires_fix"] = {"target_width": 1024, "target_height": 1024, "upscaler": "Latent"}
    assert API.prepare(body, "/v3/async/txt2img").body["request"]["hires_fix"]["upscaler"] == "Latent"
    body["request"]["enable_transparent_background"] = True
    body["extra"]["response_image_type"] = "jpeg"
    with pytest.raises(GenMediaValidationError, match="transparent"):
        API.prepare(body, "/v3/async/txt2img")
    with pytest.raises(GenMediaValidationError, match="image_base64"):
        API.prepare(body, IMG2IMG)


@pytest.mark.parametrize(
    ("body", "described"),
    [
        (seed_example("novita_img2img_1_request"), ("a cute dog", "sd_xl_base_1.0.safetensors")),
        ({"prompt": "a boat at dawn", "width": 832, "height": 480}, ("a boat at dawn", None)),
        ({"model_name": "kling-v1", "prompt": "a kite"}, ("a kite", "kling-v1")),
        ({"request": {"prompt": "", "model_name": "m"}}, (None, "m")),
    ],
    ids=["img2img", "wan-t2v", "top-level-model", "empty-prompt"],
)
def test_describe_request_reads_the_prompt_and_the_model(body: dict[str, Any], described: tuple[Any, Any]) -> None:
    assert API.describe_request(body) == described
