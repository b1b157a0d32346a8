"""The cheap read of each adapter: progress for a task under way, None for any answer `parse_result` must read."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.results import TaskProgress, TaskStatus

RUNNING = TaskProgress(TaskStatus.RUNNING)
QUEUED = TaskProgress(TaskStatus.QUEUED)


def novita(status: str, **task: Any) -> dict[str, Any]:
    return {"extra": {}, "task": {"task_id": "t", "status": status, **task}, "images": []}


def jimeng(status: str, code: int = 10000) -> dict[str, Any]:
    return {"code": code, "message": "Success", "data": {"status": status, "video_url": ""}}


def bailian(status: str) -> dict[str, Any]:
    return {"request_id": "r", "output": {"task_id": "t", "task_status": status}}


CASES = [
    ("novita", novita("TASK_STATUS_QUEUED", eta=0, progress_percent=0), TaskProgress(TaskStatus.QUEUED, 0.0, 0.0)),
    (
        "novita",
        novita("TASK_STATUS_PROCESSING", eta="12", progress_percent=40),
        TaskProgress(TaskStatus.RUNNING, 40, 12),
    ),
    ("novita", novita("TASK_STATUS_SUCCEED"), None),
    ("novita", novita("TASK_STATUS_FAILED", reason="nsfw"), None),
    ("jimeng", jimeng("in_queue"), QUEUED),
    ("jimeng", jimeng("generating"), RUNNING),
    ("jimeng", jimeng("done"), None),
    ("jimeng", jimeng("expired"), None),
    ("jimeng", jimeng("generating", code=50430), None),
    ("bailian", bailian("PENDING"), QUEUED),
    ("bailian", bailian("RUNNING"), RUNNING),
    ("bailian", bailian("SUCCEEDED"), None),
    ("bailian", bailian("FAILED"), None),
    ("bailian", bailian("UNKNOWN"), None),
    ("bailian", {"code": "InvalidApiKey", "message": "bad"}, None),
    ("avatar", {"id": "a", "web_work_status": 10}, RUNNING),
    ("avatar", {"code": 0, "data": {"id": "a", "web_work_status": 10}}, RUNNING),
    ("avatar", {"id": "a", "web_work_status": 200, "work_video_path": "https://v/1.mp4"}, None),
    ("avatar", {"id": "a", "web_work_status": -1}, None),
    ("avatar", {"code": 500, "message": "busy"}, None),
]


@pytest.mark.parametrize(("api", "body", "expected"), CASES)
def test_parse_progress_reads_only_a_task_under_way(api: str, body: dict[str, Any], expected: TaskProgress) -> None:
    assert get_api(api).parse_progress(body) == expected


@pytest.mark.parametrize(("api", "body", "expected"), [case for case in CASES if case[2] is not None])
def test_the_cheap_read_agrees_with_the_full_one(api: str, body: dict[str, Any], expected: TaskProgress) -> None:
    result = get_api(api).parse_result("t", body)
    assert (result.status, result.progress, result.eta_seconds) == tuple(expected)
