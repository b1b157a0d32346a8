from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_genmedia.apis.avatar import SUBMIT_PATH, AvatarApi
from airflow_provider_genmedia.exceptions import GenMediaAPIError, GenMediaValidationError
from airflow_provider_genmedia.results import TaskStatus
from tests.unit.apis.conftest import seed_example

API = AvatarApi()
TASK_ID = "67930a6f8d5ac20007a77b1c"


def test_seed_result_is_done_with_the_plain_video() -> None:
    body = seed_example("avatar_result")
    result = API.parse_result(TASK_ID, body)
    assert result.status is TaskStatus.SUCCEEDED
    (output,) = result.outputs
    assert output.url == body["work_video_path"]
    assert (output.kind, output.format, output.expires_at) == ("video", "mp4", None)
    assert result.raw == body


def test_wrapped_answers_are_read_too() -> None:
    inner = {
        "id": TASK_ID,
        "web_work_status": 200,
        "work_video_path": "https://cdn/x.mp4",
        "create_time": 1737689710890,
    }
    result = API.parse_result(TASK_ID, {"code": 0, "data": inner})
    assert (result.status, result.outputs[0].url) == (TaskStatus.SUCCEEDED, "https://cdn/x.mp4")


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (0, TaskStatus.RUNNING),
        (1, TaskStatus.RUNNING),
        ("100", TaskStatus.RUNNING),
        (-1, TaskStatus.FAILED),
        ("-3", TaskStatus.FAILED),
    ],
)
def test_states(state: Any, status: TaskStatus) -> None:
    assert API.parse_result(TASK_ID, {"id": TASK_ID, "web_work_status": state}).status is status


def test_done_without_a_video_is_a_failure() -> None:
    result = API.parse_result(TASK_ID, {"id": TASK_ID, "web_work_status": 200, "work_video_path": ""})
    assert result.status is TaskStatus.FAILED


def test_an_error_code_is_an_api_error() -> None:
    with pytest.raises(GenMediaAPIError, match="task not exist"):
        API.parse_result(TASK_ID, {"code": 404001, "msg": "task not exist", "data": None})


def test_submit_answers() -> None:
    assert API.parse_submit({"code": 0, "data": {"id": "a"}}) == "a"
    assert API.parse_submit({"id": "b"}) == "b"
    assert API.parse_submit({"task_id": "c"}) == "c"
    with pytest.raises(GenMediaAPIError, match="balance"):
        API.parse_submit({"code": 4001, "message": "insufficient balance"})


AVATAR = "https://example.com/face.png"
VOICE = {"voice_engine_id": "nina", "language": "en", "text": "Hello there"}


def test_valid_requests() -> None:
    body = API.prepare({"avatar_url": AVATAR, "audio_url": "https://example.com/a.mp3"}, SUBMIT_PATH).body
    assert body == {"avatar_url": AVATAR, "audio_url": "https://example.com/a.mp3", "no_watermark": False}
    assert API.prepare({"avatar_url": AVATAR, "use_voice": VOICE, "no_watermark": True}, SUBMIT_PATH).body
    clone = {"audio_url": "https://example.com/sample.wav", "language": "zh", "text": "你好"}
    assert API.prepare({"avatar_url": AVATAR, "create_voice": clone}, SUBMIT_PATH).body
    assert API.result_path(TASK_ID) == f"/avatar/task/{TASK_ID}"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"avatar_url": AVATAR}, "exactly one of audio_url, create_voice, use_voice"),
        ({"avatar_url": AVATAR, "audio_url": "https://a/b.mp3", "use_voice": VOICE}, "got audio_url, use_voice"),
        ({"avatar_url": "face.png", "audio_url": "https://a/b.mp3"}, "avatar_url"),
        ({"avatar_url": AVATAR, "use_voice": {**VOICE, "language": "fr"}}, "use_voice.language"),
        (
            {"avatar_url": AVATAR, "create_voice": {"audio_url": "https://a/b", "language": "en", "text": ""}},
            "create_voice.text",
        ),
        ({"avatar_url": AVATAR, "audio_url": "https://a/b.mp3", "watermark": False}, "watermark"),
    ],
)
def test_bad_requests_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(GenMediaValidationError, match=field):
        API.prepare(body, SUBMIT_PATH)


@pytest.mark.parametrize(
    ("voice", "prompt"),
    [
        ({"audio_url": "https://example.com/hello.mp3"}, None),
        ({"create_voice": {"audio_url": "https://example.com/s.mp3", "language": "en", "text": "Hello"}}, "Hello"),
        ({"use_voice": {"voice_engine_id": "v-1", "language": "zh", "text": "你好"}}, "你好"),
    ],
    ids=["audio_url", "create_voice", "use_voice"],
)
def test_describe_request_reads_the_spoken_text(voice: dict[str, Any], prompt: str | None) -> None:
    assert API.describe_request({"avatar_url": "https://example.com/face.png", **voice}) == (prompt, None)
