"""Wan video through gpt.ge, in DashScope's task body.

https://gpt.morphogen.top/en/video/bailian/query-results.html; DashScope keeps a task and its ``video_url`` for
24 hours and the link's ``Expires`` is about ``end_time`` + 24 h, the same on every query
(https://www.alibabacloud.com/help/en/model-studio/text-to-video-api-reference). Expired tasks are ``UNKNOWN``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from aiohttp import web

from genmedia_emulator.config import EmulatorConfig
from genmedia_emulator.media import MediaSpec
from genmedia_emulator.schemas.bailian import ROUTES
from genmedia_emulator.schemas.base import BodyError, VendorSchema
from genmedia_emulator.state import Phase, Plan, Task
from genmedia_emulator.vendors.base import GPTGE, HOUR, Renderer, SeedPicker, View, request_id

#: DashScope's times are Beijing time.
BEIJING = timezone(timedelta(hours=8))


def _dashscope_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, BEIJING).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class BailianRenderer(Renderer):
    """Wan text-to-video and image-to-video."""

    api = "bailian"
    gateway = GPTGE
    submit_routes = tuple(ROUTES)
    url_ttl = 24 * HOUR
    _states: ClassVar[dict[Phase, str]] = {
        Phase.QUEUED: "PENDING",
        Phase.RUNNING: "RUNNING",
        Phase.SUCCEEDED: "SUCCEEDED",
        Phase.FAILED: "FAILED",
        Phase.EXPIRED: "UNKNOWN",
    }

    def schema(self, path: str) -> type[VendorSchema] | None:
        """The route's schema."""
        return ROUTES[path]

    def invalid(self, error: BodyError) -> web.Response:
        """DashScope's ``InvalidParameter``."""
        return web.json_response(
            {"code": "InvalidParameter", "message": str(error), "request_id": request_id()}, status=400
        )

    def plan(self, path: str, body: dict[str, Any], pick_seed: SeedPicker) -> Plan:
        """One MP4; the seed only when one was given (DashScope does not report it)."""
        seed = body["parameters"].get("seed")
        return Plan(body["input"]["prompt"], {"video.mp4": MediaSpec("video", "mp4", 1280, 720, seed or 0)}, seed)

    def submitted(self, task: Task, config: EmulatorConfig) -> dict[str, Any]:
        """``{"output": {"task_id", "task_status": "PENDING"}, "request_id"}``."""
        return {"output": {"task_id": task.id, "task_status": "PENDING"}, "request_id": request_id()}

    def result(self, view: View) -> web.Response:
        """``output.task_status``; ``video_url`` and ``usage`` on success, ``code``/``message`` on failure."""
        task, status = view.task, view.status
        output: dict[str, Any] = {"task_id": task.id, "task_status": self._states[status]}
        body: dict[str, Any] = {"request_id": request_id(), "output": output}
        if status is Phase.EXPIRED:
            return web.json_response(body)
        output.update(submit_time=_dashscope_time(task.submitted_at), orig_prompt=task.plan.prompt)
        if status is not Phase.QUEUED:
            output["scheduled_time"] = _dashscope_time(task.started_at)
        if status.is_terminal:
            output["end_time"] = _dashscope_time(task.finished_at)
        if status is Phase.FAILED:
            output.update(code="InternalError.Algo", message=view.config.fail_reason)
        elif status is Phase.SUCCEEDED:
            parameters = task.body["parameters"]
            output["video_url"] = view.urls["video.mp4"]
            if parameters.get("prompt_extend", True) is not False:
                output["actual_prompt"] = task.plan.prompt
            body["usage"] = {
                "video_count": 1,
                "video_ratio": parameters.get("size") or parameters.get("resolution"),
                "video_duration": parameters["duration"],
            }
        return web.json_response(body)
