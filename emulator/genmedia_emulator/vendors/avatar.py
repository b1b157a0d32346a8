"""Talking-avatar video through gpt.ge, in the DreamFace work body.

https://gpt.morphogen.top/en/video/digital-human/query-results.html shows the task flat; the upstream apifox doc
(https://apifox.com/apidoc/shared/6b8e9d4f-3f69-419a-be26-53e603a2fc2b/api-278032908) wraps it in
``{"code": 0, "data": {...}}``: ``avatar_result`` picks one. ``web_work_status`` 0 while running, 200 done, -1
failed. The documents show unsigned CDN links and say nothing of their lifetime: the emulator signs them for 1 h.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any, ClassVar

from aiohttp import web

from genmedia_emulator.config import EmulatorConfig
from genmedia_emulator.media import MediaSpec
from genmedia_emulator.schemas.avatar import ROUTES
from genmedia_emulator.schemas.base import BodyError, VendorSchema
from genmedia_emulator.state import Phase, Plan, Task
from genmedia_emulator.vendors.base import GPTGE, Renderer, SeedPicker, View, texts

VIDEO_SIZE = (320, 180)


class AvatarRenderer(Renderer):
    """Digital-human videos."""

    api = "avatar"
    gateway = GPTGE
    submit_routes = tuple(ROUTES)
    _web_work_status: ClassVar[dict[Phase, int]] = {
        Phase.QUEUED: 0,
        Phase.RUNNING: 0,
        Phase.SUCCEEDED: 200,
        Phase.FAILED: -1,
    }

    def schema(self, path: str) -> type[VendorSchema] | None:
        """The route's schema."""
        return ROUTES[path]

    def new_task_id(self) -> str:
        """24 hex digits, like ``67930a6f8d5ac20007a77b1c``."""
        return secrets.token_hex(12)

    def invalid(self, error: BodyError) -> web.Response:
        """The upstream ``{"code", "message", "data"}`` wrapper."""
        return web.json_response({"code": 400, "message": str(error), "data": None}, status=400)

    def plan(self, path: str, body: dict[str, Any], pick_seed: SeedPicker) -> Plan:
        """A watermarked and a clean MP4 of one video; markers are searched in the URLs and the spoken text."""
        prompt = " ".join(texts(body, ("avatar_url", "audio_url", "text")))
        files = {name: MediaSpec("video", "mp4", *VIDEO_SIZE, 0) for name in ("wm.mp4", "no_wm.mp4")}
        return Plan(prompt, files, outputs=1)

    def submitted(self, task: Task, config: EmulatorConfig) -> dict[str, Any]:
        """``{"code": 0, "data": {"id"}}``."""
        return {"code": 0, "data": {"id": task.id}}

    def result(self, view: View) -> web.Response:
        """The work, flat or wrapped; the three video paths once done."""
        task, status = view.task, view.status
        if status is Phase.EXPIRED:
            return self.not_found(task.id)
        created_ms = int(task.submitted_at * 1000)
        clean, marked = view.urls.get("no_wm.mp4", ""), view.urls.get("wm.mp4", "")
        work = {
            "id": task.id,
            "ext": {"sing_title": f"{created_ms}.mp3", "track_info": "{}", "animate_channel": "dynamic"},
            "singer": "DreamFace",
            "file_type": "VIDEO",
            "work_name": f"{created_ms}.mp3",
            "animate_id": uuid.uuid5(uuid.NAMESPACE_OID, task.id).hex,
            "play_types": ["PT", "", "ANIMATE"],
            "vip_enable": False,
            "create_time": created_ms,
            "music_title": "Talking avatar",
            "template_id": "655b213cccd1db0007e1d977",
            "user_image_url": "",
            "work_webp_path": "",
            "web_work_status": self._web_work_status[status],
            "work_video_path": clean if task.body.get("no_watermark") else marked,
            "share_magic_text": "",
            "example_image_url": [],
            "picture_path_list": [],
            "primary_play_type": "ANIMATE",
            "tmp_online_enable": False,
            "webp_aspect_ratio": 1,
            "animate_params_str": "{}",
            "video_aspect_ratio": 1,
            "wm_work_video_path": marked,
            "template_create_time": 1700471100257,
            "no_wm_work_video_path": clean,
        }
        if view.config.avatar_result == "wrapped":
            return web.json_response({"code": 0, "data": work})
        return web.json_response(work)
