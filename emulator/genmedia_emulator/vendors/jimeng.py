"""Jimeng video through gpt.ge, in the Volcengine visual-API envelope it passes through.

https://gpt.morphogen.top/en/video/jimeng/query-results.html: ``data.status`` in_queue, generating, done
(``resp_data`` a JSON string), expired. The video link lives 1 hour (Volcengine's Jimeng
video doc, https://www.volcengine.com/docs/6444/69728); the query page example's link carries that expiry in its
path.
A failed task answers HTTP 400 with code 50413 ("Post Text Risk Not Pass", a Volcengine risk verdict).
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from genmedia_emulator.config import EmulatorConfig
from genmedia_emulator.media import MediaSpec
from genmedia_emulator.schemas.base import BodyError, VendorSchema
from genmedia_emulator.schemas.jimeng import IMAGE2VIDEO, ROUTES, SIZES
from genmedia_emulator.state import Phase, Plan, Task
from genmedia_emulator.vendors.base import GPTGE, Renderer, SeedPicker, View


def _volcengine(code: int, message: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """``{"code", "data", "message", "request_id", "status", "time_elapsed"}``."""
    return {
        "code": code,
        "data": data,
        "message": message,
        "request_id": time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(9).upper(),
        "status": code,
        "time_elapsed": f"{secrets.randbelow(100_000) / 1000:.6f}ms",
    }


class JimengRenderer(Renderer):
    """Jimeng text-to-video and image-to-video."""

    api = "jimeng"
    gateway = GPTGE
    submit_routes = tuple(ROUTES)
    _states: ClassVar[dict[Phase, str]] = {
        Phase.QUEUED: "in_queue",
        Phase.RUNNING: "generating",
        Phase.SUCCEEDED: "done",
        Phase.EXPIRED: "expired",
    }
    failure_code = 50413

    def schema(self, path: str) -> type[VendorSchema] | None:
        """The route's schema."""
        return ROUTES[path]

    def new_task_id(self) -> str:
        """A numeric string of 20 digits, like ``14117763723766220057``."""
        return str(10**19 + secrets.randbelow(9 * 10**19))

    def invalid(self, error: BodyError) -> web.Response:
        """Volcengine's 50215 ``Input invalid``."""
        return web.json_response(_volcengine(50215, f"Input invalid: {error}", None), status=400)

    def plan(self, path: str, body: dict[str, Any], pick_seed: SeedPicker) -> Plan:
        """One 5 s MP4 in the asked aspect ratio."""
        seed = pick_seed(body.get("seed"))
        size = SIZES[body.get("aspect_ratio") or "16:9"]
        return Plan(body["prompt"], {"video.mp4": MediaSpec("video", "mp4", *size, seed)}, seed)

    def submitted(self, task: Task, config: EmulatorConfig) -> dict[str, Any]:
        """``{"code": 10000, "data": {"task_id"}, ...}``."""
        return _volcengine(10000, "Success", {"task_id": task.id})

    def _context(self, task: Task, video_url: str) -> str:
        """``resp_data``: Volcengine's ``infer_ctx`` as a JSON string."""
        spec = task.plan.files["video.mp4"]
        params = {
            "aspect_ratio": task.body.get("aspect_ratio") or "16:9",
            "fps": 24,
            "frames": 121,
            "width": spec.width,
            "height": spec.height,
            "seed": task.plan.seed,
            "ori_prompt": task.plan.prompt,
            "req_key": "jimeng_vgfm_i2v_l20" if task.path == IMAGE2VIDEO else "jimeng_vgfm_t2v_l20",
            "video_url": video_url,
        }
        context = {
            "algorithm_key": "x2v_scheduler_vgfm",
            "created_at": datetime.fromtimestamp(task.submitted_at, UTC).isoformat(),
            "params": params,
            "request_id": task.id,
            "time_stamp": str(int(task.finished_at)),
        }
        return json.dumps({"infer_ctx": context})

    def result(self, view: View) -> web.Response:
        """The task in ``data``; a failed one as a 50413 verdict."""
        task, status = view.task, view.status
        if status is Phase.FAILED:
            return web.json_response(_volcengine(self.failure_code, view.config.fail_reason, None), status=400)
        data: dict[str, Any] = {
            "status": self._states[status],
            "resp_data": "",
            "video_url": "",
            "image_urls": None,
            "binary_data_base64": [],
        }
        if status is Phase.SUCCEEDED:
            video_url = view.urls["video.mp4"]
            data.update(resp_data=self._context(task, video_url), video_url=video_url)
        return web.json_response(_volcengine(10000, "Success", data))
