"""What each adapter reads as a job's usage: what its request asks (before it is sent) and what the vendor reports."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.results import GenerationResult, TaskStatus, Usage
from tests.unit.apis.conftest import RECEIVED_AT, seed_example

IMG2IMG = {"request": {"image_num": 3, "width": 512, "height": 768, "prompt": "x"}, "extra": {}}


@pytest.mark.parametrize(
    ("api", "body", "expected"),
    [
        ("novita", IMG2IMG, Usage(outputs=3, resolution="512x768")),
        (
            "novita",
            {"request": {"image_num": "2", "width": 256, "height": 192}},
            Usage(outputs=2, resolution="256x192"),
        ),
        ("novita", {"prompt": "a boat", "width": 832, "height": 480}, Usage(resolution="832x480")),
        (
            "novita",
            {"input": {"prompt": "p"}, "parameters": {"size": "1280*720", "duration": 8}},
            Usage(video_seconds=8, resolution="1280x720"),
        ),
        (
            "novita",
            {"input": {"prompt": "p", "img_url": "u"}, "parameters": {"resolution": "720P", "duration": 5}},
            Usage(video_seconds=5, resolution="720P"),
        ),
        ("novita", {"prompt": "p", "duration": "10", "aspect_ratio": "16:9"}, Usage(video_seconds=10)),
        ("novita", {"prompt": "p", "resolution": "768P", "duration": 6}, Usage(video_seconds=6, resolution="768P")),
        (
            "novita",
            {"model_name": "SVD-XT", "frames_num": 25, "frames_per_second": 6},
            Usage(video_seconds=25 / 6),
        ),
        ("novita", {"prompt": "nothing said"}, Usage()),
        ("jimeng", {"prompt": "a cat"}, Usage(video_seconds=5, resolution="1280x720")),
        ("jimeng", {"prompt": "a cat", "aspect_ratio": "9:21"}, Usage(video_seconds=5, resolution="720x1680")),
        (
            "bailian",
            {"model": "wan2.6-t2v", "input": {"prompt": "k"}, "parameters": {"size": "1920*1080", "duration": 10}},
            Usage(video_seconds=10, resolution="1920x1080"),
        ),
        (
            "bailian",
            {"model": "wan2.6-i2v", "input": {"prompt": "k"}, "parameters": {"resolution": "720P", "duration": 15}},
            Usage(video_seconds=15, resolution="720P"),
        ),
        ("avatar", {"avatar_url": "https://a/b.png", "audio_url": "https://a/b.mp3"}, Usage()),
    ],
)
def test_requested_usage_reads_the_vendors_own_fields(api: str, body: dict[str, Any], expected: Usage) -> None:
    assert get_api(api).requested_usage(body) == expected


def test_bailian_reports_dashscope_usage_from_its_seed_answer() -> None:
    body = seed_example("bailian_result")
    result = get_api("bailian").parse_result("t", body, received_at=RECEIVED_AT)
    assert result.usage == Usage(
        outputs=1,
        video_seconds=5,
        resolution="832x480",
        reported={"video_count": 1, "video_ratio": "832*480", "video_duration": 5},
    )


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"video_count": "1", "video_duration": "10", "SR": 720}, Usage(video_seconds=10, resolution="720P")),
        ({"output_video_duration": 15, "input_video_duration": 3}, Usage(video_seconds=15)),
        ({"duration": 5.0, "video_count": 2}, Usage(outputs=2, video_seconds=5)),
    ],
)
def test_bailian_reads_the_usage_keys_of_each_wan_version(usage: dict[str, Any], expected: Usage) -> None:
    body = {"output": {"task_id": "t", "task_status": "SUCCEEDED", "video_url": "https://o/v.mp4"}, "usage": usage}
    reported = get_api("bailian").parse_result("t", body, received_at=RECEIVED_AT).usage
    assert reported == expected.model_copy(update={"reported": usage})


def test_a_task_still_running_reports_no_usage() -> None:
    body = {"output": {"task_id": "t", "task_status": "RUNNING"}}
    assert get_api("bailian").parse_result("t", body).usage is None
    assert get_api("novita").parse_result("t", seed_example("novita_task_result")).usage is None


def test_jimeng_reports_the_frames_of_its_resp_data() -> None:
    result = get_api("jimeng").parse_result("14117763723766220057", seed_example("jimeng_result"))
    assert result.usage is not None
    assert result.usage.reported == {"fps": 24, "frames": 121}
    assert all(isinstance(value, int) for value in result.usage.reported.values())
    assert result.usage.video_seconds == pytest.approx(121 / 24, abs=0.001)


def succeeded(api: str, usage: Usage | None = None) -> GenerationResult:
    return GenerationResult(api=api, task_id="t", status=TaskStatus.SUCCEEDED, usage=usage)


def test_complete_keeps_what_was_asked_and_adds_what_the_vendor_reported() -> None:
    reported = Usage(outputs=1, video_seconds=5.2, resolution="1280x720", reported={"video_duration": 5.2})
    body = {"model": "wan2.6-i2v", "input": {"prompt": "k"}, "parameters": {"resolution": "720P", "duration": 5}}
    usage = get_api("bailian").complete(succeeded("bailian", reported), body).usage
    assert usage == Usage(outputs=1, video_seconds=5, resolution="720P", reported={"video_duration": 5.2})


def test_complete_fills_what_the_request_did_not_say_from_the_report() -> None:
    reported = Usage(video_seconds=7.5, reported={"duration": 7.5})
    body = {"avatar_url": "https://a/b.png", "audio_url": "https://a/b.mp3"}
    usage = get_api("avatar").complete(succeeded("avatar", reported), body).usage
    assert usage == Usage(video_seconds=7.5, reported={"duration": 7.5})


def test_complete_without_a_request_leaves_the_result_as_the_vendor_gave_it() -> None:
    result = succeeded("novita")
    assert get_api("novita").complete(result, None) is result


def test_a_result_stored_before_usage_existed_still_loads() -> None:
    stored = {"api": "novita", "task_id": "t", "status": "succeeded", "outputs": [], "raw": {}}
    assert GenerationResult.model_validate(stored).usage is None
