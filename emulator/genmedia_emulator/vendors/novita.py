"""Novita v3 async: ``POST /v3/async/<endpoint>`` for the endpoints of `ENDPOINTS`, ``GET /v3/async/task-result``.

Answers follow https://novita.ai/docs/api-reference/model-apis-task-result and the examples of
https://novita.ai/docs/api-reference/model-apis-img2img: seeds and ``debug_info`` times as strings, a queued task
with ``extra: {}`` and ``eta: 0``, progress 0 for finished image tasks and 100 for videos. An expired task
answers 404 ``TASK_NOT_FOUND`` (https://novita.ai/docs/api-reference/basic-error-code).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from aiohttp import web

from genmedia_emulator.config import EmulatorConfig
from genmedia_emulator.media import MediaSpec, image_size
from genmedia_emulator.schemas.base import VendorSchema
from genmedia_emulator.schemas.novita import ENDPOINTS
from genmedia_emulator.state import Phase, Plan, Task
from genmedia_emulator.vendors.base import NOVITA, Renderer, SeedPicker, View, texts

PREFIX = "/v3/async/"
#: Endpoints whose outputs are videos; every other endpoint makes images.
VIDEO_ENDPOINT = re.compile(r"video|2v\b|hailuo")
DEFAULT_IMAGE_SIDE = 512
DEFAULT_VIDEO_SIZE = (320, 180)
STATUSES = {
    Phase.QUEUED: "TASK_STATUS_QUEUED",
    Phase.RUNNING: "TASK_STATUS_PROCESSING",
    Phase.SUCCEEDED: "TASK_STATUS_SUCCEED",
    Phase.FAILED: "TASK_STATUS_FAILED",
}
TASK_TYPES = {
    "img2img": "IMG_TO_IMG",
    "txt2img": "TXT_TO_IMG",
    "txt2video": "TXT_TO_VIDEO",
    "img2video": "IMG_TO_VIDEO",
}


def _millis(moment: float) -> str:
    return str(int(moment * 1000))


def _whole(fields: dict[str, Any], name: str, default: int, low: int = 16, high: int = 2048) -> int:
    """An integer field (of a body the schema may not cover): used when it is in ``low..high``, else the default."""
    value = fields.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high else default


def _object(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for null, a list or anything else."""
    return value if isinstance(value, dict) else {}


def _input_image(fields: dict[str, Any]) -> bytes | None:
    """The first input image sent as base64, if any."""
    for name in ("image_base64", "image_file", "image"):
        value = fields.get(name)
        if not isinstance(value, str):
            continue
        try:
            data = base64.b64decode(value.split(",", 1)[-1], validate=True)
        except (binascii.Error, ValueError):  # not base64
            continue
        if image_size(data) is not None:
            return data
    return None


class NovitaRenderer(Renderer):
    """Novita AI v3 async tasks."""

    api = "novita"
    gateway = NOVITA
    submit_routes = (f"{PREFIX}{{endpoint}}",)

    def schema(self, path: str) -> type[VendorSchema] | None:
        """The allowlisted endpoint's schema; `KeyError` for any other endpoint."""
        return ENDPOINTS[path.removeprefix(PREFIX)]

    def plan(self, path: str, body: dict[str, Any], pick_seed: SeedPicker) -> Plan:
        """Sizes, count, seed and input image from ``request`` (or the flat body); formats from ``extra``."""
        extra = _object(body.get("extra"))
        fields = _object(body.get("request")) or body
        prompt = " ".join(texts(body, ("prompt",)))
        seed = pick_seed(fields.get("seed"))
        if VIDEO_ENDPOINT.search(path.removeprefix(PREFIX)):
            video_type = extra.get("response_video_type") or "mp4"
            size = (_whole(fields, "width", DEFAULT_VIDEO_SIZE[0]), _whole(fields, "height", DEFAULT_VIDEO_SIZE[1]))
            return Plan(prompt, {f"0.{video_type}": MediaSpec("video", video_type, *size, seed)}, seed)
        image_type = extra.get("response_image_type") or "png"
        source = _input_image(fields)
        source_side = (image_size(source) if source else None) or (DEFAULT_IMAGE_SIDE, DEFAULT_IMAGE_SIDE)
        size = (_whole(fields, "width", source_side[0]), _whole(fields, "height", source_side[1]))
        count = _whole(fields, "image_num", 1, 1, 8)
        files = {
            f"{index}.{image_type}": MediaSpec("image", image_type, *size, seed + index, source)
            for index in range(count)
        }
        return Plan(prompt, files, seed)

    def submitted(self, task: Task, config: EmulatorConfig) -> dict[str, Any]:
        """``{"task_id"}`` as documented, or the legacy ``{"code": 0, "msg": "", "data": {"task_id"}}``."""
        if config.novita_submit_answer == "legacy":
            return {"code": 0, "msg": "", "data": {"task_id": task.id}}
        return {"task_id": task.id}

    def _outputs(self, view: View, nsfw_check: bool) -> dict[str, list[dict[str, Any]]]:
        task = view.task
        outputs: dict[str, list[dict[str, Any]]] = {"images": [], "videos": [], "audios": []}
        for name, url in view.urls.items():
            spec = task.plan.files[name]
            ttl: int | str = str(view.ttl)
            if spec.kind == "image" and view.config.image_url_ttl_type == "integer":
                ttl = view.ttl
            output: dict[str, Any] = {
                f"{spec.kind}_url": url,
                f"{spec.kind}_url_ttl": ttl,
                f"{spec.kind}_type": spec.format,
            }
            if spec.kind == "image":
                verdict = {"valid": True, "confidence": 97.5 if task.nsfw_flagged else 1.2}
                output["nsfw_detection_result"] = verdict if nsfw_check else None
            outputs[f"{spec.kind}s"].append(output)
        return outputs

    def result(self, view: View) -> web.Response:
        """The task-result body."""
        task, status, now = view.task, view.status, view.now
        if status is Phase.EXPIRED:
            return self.not_found(task.id)
        endpoint = task.path.removeprefix(PREFIX)
        nsfw_check = _object(task.body.get("extra")).get("enable_nsfw_detection") is True
        progress = {Phase.QUEUED: 0, Phase.RUNNING: task.progress(now)}.get(status)
        if progress is None:  # finished: image tasks report 0, video tasks 100
            progress = 100 if task.plan.video and status is Phase.SUCCEEDED else 0
        extra: dict[str, Any] = {}
        if status is not Phase.QUEUED:
            debug_info = {
                "request_info": "",
                "submit_time_ms": _millis(task.submitted_at),
                "execute_time_ms": _millis(task.started_at),
                "complete_time_ms": _millis(task.finished_at) if status.is_terminal else "",
            }
            extra = {"seed": str(task.plan.seed), "enable_nsfw_detection": nsfw_check, "debug_info": debug_info}
        body = {
            "extra": extra,
            "task": {
                "task_id": task.id,
                "task_type": TASK_TYPES.get(endpoint) or re.sub(r"[^A-Z0-9]+", "_", endpoint.upper()),
                "status": STATUSES[status],
                "reason": view.config.fail_reason if status is Phase.FAILED else "",
                "eta": task.eta(now) if status is Phase.RUNNING else 0,
                "progress_percent": progress,
            },
            **self._outputs(view, nsfw_check),
        }
        return web.json_response(body)
