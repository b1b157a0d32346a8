from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_genmedia.apis.jimeng import IMAGE2VIDEO_PATH, TEXT2VIDEO_PATH, JimengApi
from airflow_provider_genmedia.exceptions import (
    GenMediaAPIError,
    GenMediaRateLimitError,
    GenMediaServerError,
    GenMediaValidationError,
)
from airflow_provider_genmedia.results import TaskStatus
from tests.unit.apis.conftest import RECEIVED_AT, png_base64, seed_example

API = JimengApi()
TASK_ID = "14117763723766220057"


def envelope(code: int = 10000, message: str = "Success", **data: Any) -> dict[str, Any]:
    return {"code": code, "data": data or None, "message": message, "request_id": "r", "status": code}


def test_seed_result_is_success_with_video_seed_and_lifetime() -> None:
    body = seed_example("jimeng_result")
    result = API.parse_result(TASK_ID, body, received_at=RECEIVED_AT)
    assert result.status is TaskStatus.SUCCEEDED
    assert result.task_id == TASK_ID
    (output,) = result.outputs
    assert output.url == body["data"]["video_url"]
    assert (output.kind, output.format, output.nsfw) == ("video", "mp4", None)
    assert output.expires_at == RECEIVED_AT + timedelta(hours=1)
    assert result.seed == 1460981510
    assert result.raw["data"]["resp_data"] == body["data"]["resp_data"]


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("in_queue", TaskStatus.QUEUED),
        ("generating", TaskStatus.RUNNING),
        ("processing", TaskStatus.RUNNING),
        ("not_found", TaskStatus.EXPIRED),
        ("expired", TaskStatus.EXPIRED),
        ("something_new", TaskStatus.RUNNING),
    ],
)
def test_states(state: str, status: TaskStatus) -> None:
    assert API.parse_result(TASK_ID, envelope(status=state)).status is status


def test_done_without_a_url_is_a_failure() -> None:
    result = API.parse_result(TASK_ID, envelope(status="done", video_url=""))
    assert result.status is TaskStatus.FAILED
    assert "no video URL" in (result.reason or "")


def test_code_is_read_before_data() -> None:
    body = envelope(code=50413, message="Post Text Risk Not Pass")
    body["data"] = {"status": "done", "video_url": "https://x/v.mp4"}
    result = API.parse_result(TASK_ID, body)
    assert (result.status, result.reason) == (TaskStatus.FAILED, "50413 Post Text Risk Not Pass")


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (50429, GenMediaRateLimitError),
        (50430, GenMediaRateLimitError),
        (50500, GenMediaServerError),
        (50501, GenMediaServerError),
    ],
)
def test_limit_and_internal_codes_are_transient_errors(code: int, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        API.parse_result(TASK_ID, envelope(code=code, message="Please Try Later"))
    assert raised.value.transient  # type: ignore[attr-defined]
    assert API.task_failure(TASK_ID, envelope(code=code)) is None


def test_risk_codes_in_error_answers_are_task_verdicts() -> None:
    verdict = API.task_failure(TASK_ID, envelope(code=50411, message="Pre Img Risk Not Pass"))
    assert verdict is not None and verdict.status is TaskStatus.FAILED
    assert verdict.reason == "50411 Pre Img Risk Not Pass"
    assert API.task_failure(TASK_ID, {"error": {"message": "bad token"}}) is None


def test_base64_frames_are_elided_from_raw() -> None:
    blob = png_base64(200, 200)
    result = API.parse_result(TASK_ID, envelope(status="generating", binary_data_base64=[blob]))
    assert blob not in repr(result.raw)


def test_submit_answer() -> None:
    body = {"code": 10000, "data": {"task_id": TASK_ID}, "message": "Success", "status": 10000}
    assert API.parse_submit(body) == TASK_ID
    with pytest.raises(GenMediaAPIError, match="Text Risk Not Pass") as raised:
        API.parse_submit(envelope(code=50412, message="Text Risk Not Pass"))
    assert raised.value.vendor_code == 50412
    with pytest.raises(GenMediaRateLimitError):
        API.parse_submit(envelope(code=50429))


def test_requests_and_routes() -> None:
    text = {"prompt": "a dog on a beach", "aspect_ratio": "21:9"}
    assert API.prepare(text, TEXT2VIDEO_PATH).body == {**text, "seed": -1}
    image = {"prompt": "it runs", "aspect_ratio": "9:21", "image_urls": ["https://example.com/dog.png"]}
    assert API.prepare(image, IMAGE2VIDEO_PATH).body["image_urls"] == image["image_urls"]
    blob = {"prompt": "it runs", "binary_data_base64": [png_base64()]}
    assert API.prepare(blob, IMAGE2VIDEO_PATH).body["aspect_ratio"] == "16:9"
    assert API.result_path(TASK_ID) == f"/task/{TASK_ID}"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (TEXT2VIDEO_PATH, {"prompt": "x" * 151}, "prompt"),
        (TEXT2VIDEO_PATH, {"prompt": ""}, "prompt"),
        (TEXT2VIDEO_PATH, {"prompt": "x", "aspect_ratio": "2:1"}, "aspect_ratio"),
        (TEXT2VIDEO_PATH, {"prompt": "x", "aspect_ratio": "9:21"}, "aspect_ratio"),
        (TEXT2VIDEO_PATH, {"prompt": "x", "seed": -2}, "seed"),
        (TEXT2VIDEO_PATH, {"prompt": "x", "frames": 121}, "frames"),
        (IMAGE2VIDEO_PATH, {"prompt": "x", "image_urls": ["file:///etc/passwd"]}, "image_urls"),
        (IMAGE2VIDEO_PATH, {"prompt": "x", "binary_data_base64": ["%%%"]}, "binary_data_base64"),
        (IMAGE2VIDEO_PATH, {"prompt": "x", "binary_data_base64": ["aGk="], "image_urls": ["https://a/b"]}, "not both"),
        (TEXT2VIDEO_PATH, {"prompt": "x", "image_urls": ["https://a/b.png"]}, "path"),
        (IMAGE2VIDEO_PATH, {"prompt": "x"}, "path"),
        ("/task/jimeng/other", {"prompt": "x"}, "path"),
    ],
)
def test_bad_requests_name_the_field(path: str, body: dict[str, Any], field: str) -> None:
    with pytest.raises(GenMediaValidationError, match=field):
        API.prepare(body, path)


def test_describe_request_reads_the_prompt_and_no_model() -> None:
    assert API.describe_request({"prompt": "a cat surfing", "aspect_ratio": "16:9"}) == ("a cat surfing", None)
    assert API.describe_request({"prompt": "a cat", "model": "jimeng-v3"}) == ("a cat", "jimeng-v3")
