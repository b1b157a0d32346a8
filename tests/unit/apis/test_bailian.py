from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_genmedia.apis.bailian import IMAGE2VIDEO_PATH, TEXT2VIDEO_PATH, BailianApi
from airflow_provider_genmedia.exceptions import GenMediaAPIError, GenMediaValidationError
from airflow_provider_genmedia.results import TaskStatus
from tests.unit.apis.conftest import RECEIVED_AT, png_base64, seed_example

API = BailianApi()


def task(state: str, **output: Any) -> dict[str, Any]:
    return {"output": {"task_id": "t1", "task_status": state, **output}, "request_id": "r"}


def test_seed_result_is_success_with_the_signed_expiry() -> None:
    body = seed_example("bailian_result")
    result = API.parse_result("ac22cbc8-3fb3-45b6-9091-d8a7b41650bc", body, received_at=RECEIVED_AT)
    assert result.status is TaskStatus.SUCCEEDED
    (output,) = result.outputs
    assert output.url == body["output"]["video_url"]
    assert (output.kind, output.format) == ("video", "mp4")
    assert output.expires_at == datetime.fromtimestamp(1761540731, UTC)
    assert result.raw == body


def test_expiry_falls_back_to_end_time_plus_24_hours_beijing_time() -> None:
    body = task("SUCCEEDED", video_url="https://oss/x.mp4", end_time="2025-10-26 12:52:20.355")
    (output,) = API.parse_result("t1", body, received_at=RECEIVED_AT).outputs
    assert output.expires_at == datetime(2025, 10, 27, 4, 52, 20, 355000, tzinfo=UTC)
    (output,) = API.parse_result(
        "t1", task("SUCCEEDED", video_url="https://oss/x.mp4"), received_at=RECEIVED_AT
    ).outputs
    assert output.expires_at == RECEIVED_AT + timedelta(hours=24)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("PENDING", TaskStatus.QUEUED),
        ("PRE-PROCESSING", TaskStatus.RUNNING),
        ("RUNNING", TaskStatus.RUNNING),
        ("POST-PROCESSING", TaskStatus.RUNNING),
        ("SUSPENDED", TaskStatus.RUNNING),
        ("CANCELED", TaskStatus.CANCELED),
        ("UNKNOWN", TaskStatus.EXPIRED),
    ],
)
def test_states(state: str, status: TaskStatus) -> None:
    result = API.parse_result("t1", task(state))
    assert result.status is status
    assert (result.reason is not None) == status.is_terminal


def test_failed_carries_code_and_message() -> None:
    result = API.parse_result(
        "t1", task("FAILED", code="DataInspectionFailed", message="Output data may contain inappropriate content.")
    )
    assert result.status is TaskStatus.FAILED
    assert result.reason == "DataInspectionFailed: Output data may contain inappropriate content."


def test_succeeded_without_a_url_is_a_failure() -> None:
    assert API.parse_result("t1", task("SUCCEEDED")).status is TaskStatus.FAILED


def test_an_error_body_without_output_is_an_api_error() -> None:
    with pytest.raises(GenMediaAPIError, match="Invalid API-key") as raised:
        API.parse_result("t1", {"code": "InvalidApiKey", "message": "Invalid API-key provided.", "request_id": "r"})
    assert raised.value.vendor_code == "InvalidApiKey"


def test_submit_answers() -> None:
    assert API.parse_submit({"output": {"task_id": "a", "task_status": "PENDING"}, "request_id": "r"}) == "a"
    assert API.parse_submit({"task_id": "b"}) == "b"
    assert API.parse_submit({"data": {"task_id": "c"}}) == "c"
    with pytest.raises(GenMediaAPIError, match="Arrearage"):
        API.parse_submit({"code": "Arrearage", "message": "Arrearage: account in arrears"})


def t2v(**parameters: Any) -> dict[str, Any]:
    return {
        "model": "wan2.6-t2v",
        "input": {"prompt": "a kitten general"},
        "parameters": {"size": "1920*1080", "duration": 5, **parameters},
    }


def i2v(model: str = "wan2.6-i2v-flash", **parameters: Any) -> dict[str, Any]:
    return {
        "model": model,
        "input": {"prompt": "it waves", "img_url": "https://example.com/cat.png"},
        "parameters": {"resolution": "720P", "duration": 10, **parameters},
    }


def test_valid_requests_and_routes() -> None:
    assert API.prepare(t2v(shot_type="multi", seed=7), TEXT2VIDEO_PATH).body["parameters"]["seed"] == 7
    assert API.prepare(i2v(audio=False), IMAGE2VIDEO_PATH).body["parameters"]["audio"] is False
    with_base64 = i2v("wan2.5-i2v-preview", resolution="480P", duration=5)
    with_base64["input"]["img_url"] = png_base64()
    assert API.prepare(with_base64, IMAGE2VIDEO_PATH).body
    unknown_model = {
        "model": "wan2.7-t2v",
        "input": {"prompt": "x"},
        "parameters": {"size": "1280*720", "duration": 12},
    }
    assert API.prepare(unknown_model, TEXT2VIDEO_PATH).body["model"] == "wan2.7-t2v"
    assert API.result_path("t1") == "/task/t1"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (TEXT2VIDEO_PATH, t2v(duration=7), "duration"),
        (TEXT2VIDEO_PATH, t2v(size="832*480"), "size"),
        (TEXT2VIDEO_PATH, t2v(size="big"), "size"),
        (TEXT2VIDEO_PATH, t2v(seed=-1), "seed"),
        (TEXT2VIDEO_PATH, t2v(seed=2_147_483_648), "seed"),
        (TEXT2VIDEO_PATH, t2v(shot_type="multi", prompt_extend=False), "shot_type"),
        (TEXT2VIDEO_PATH, t2v(shot_type="many"), "shot_type"),
        (TEXT2VIDEO_PATH, t2v(audio=True), "audio"),
        (TEXT2VIDEO_PATH, t2v(resolution="720P"), "size"),
        (TEXT2VIDEO_PATH, {**t2v(), "input": {"prompt": "x", "negative_prompt": "n" * 501}}, "negative_prompt"),
        (TEXT2VIDEO_PATH, {**t2v(), "input": {"prompt": "x", "audio_url": "not a url"}}, "audio_url"),
        (TEXT2VIDEO_PATH, {**t2v(), "input": {"prompt": "x", "img_url": "https://a/b.png"}}, "img_url"),
        (IMAGE2VIDEO_PATH, i2v(resolution="480P"), "resolution"),
        (IMAGE2VIDEO_PATH, i2v(duration=20), "duration"),
        (IMAGE2VIDEO_PATH, i2v("wan2.6-i2v", audio=True), "audio"),
        (IMAGE2VIDEO_PATH, {**i2v(), "input": {"prompt": "x"}}, "img_url"),
        (IMAGE2VIDEO_PATH, {**i2v(), "input": {"prompt": "x", "img_url": "%%% not base64"}}, "img_url"),
        (IMAGE2VIDEO_PATH, t2v(), "path"),
        (TEXT2VIDEO_PATH, {**t2v(), "extra": 1}, "extra"),
    ],
)
def test_bad_requests_name_the_field(path: str, body: dict[str, Any], field: str) -> None:
    with pytest.raises(GenMediaValidationError, match=field):
        API.prepare(body, path)


def test_describe_request_reads_input_prompt_and_model() -> None:
    body = {"model": "wan2.6-t2v", "input": {"prompt": "a red kite"}, "parameters": {"size": "1280*720"}}
    assert API.describe_request(body) == ("a red kite", "wan2.6-t2v")
    assert API.describe_request({"prompt": "not where Bailian puts it"}) == (None, None)
