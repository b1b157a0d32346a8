"""The four per-API renderers: how each vendor reads a submit and words its answers and errors.

Shapes follow shared/seeds and reference/apis.md. Where the vendors' documents say nothing the choices are:
an expired Novita or avatar task answers 404 (the task is gone), Jimeng ``data.status`` ``expired`` and
Bailian ``UNKNOWN``; a failed Jimeng task answers HTTP 400 with code 50413 (a Volcengine risk verdict).
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from airflow_provider_genmedia.apis import bailian, jimeng
from airflow_provider_genmedia.apis.avatar import SUBMIT_PATH as AVATAR_PATH
from airflow_provider_genmedia.apis.base import decode_base64, integer, mapping, validate_model
from airflow_provider_genmedia.apis.novita import ASYNC_PREFIX, NovitaExtra
from airflow_provider_genmedia.emulator.media import MediaSpec, image_size
from airflow_provider_genmedia.emulator.state import Plan, Task
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.results import TaskStatus

SeedPicker = Callable[[Any], int]
HOUR = 3600
#: Novita endpoints whose outputs are videos; every other ``/v3/async/<endpoint>`` makes images.
VIDEO_ENDPOINT = re.compile(r"video|2v\b|hailuo")
DEFAULT_IMAGE_SIDE = 512
DEFAULT_VIDEO_SIZE = (320, 180)


@dataclass(frozen=True)
class View:
    """A task as one poll sees it: its state now, freshly signed output URLs and their lifetime."""

    task: Task
    now: float
    status: TaskStatus
    urls: dict[str, str]
    ttl: int
    reason: str


def _texts(value: Any, keys: tuple[str, ...]) -> Iterator[str]:
    """Every string under one of ``keys``, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in keys and isinstance(item, str):
                yield item
            else:
                yield from _texts(item, keys)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item, keys)


def _millis(moment: float) -> str:
    return str(int(moment * 1000))


def _request_id() -> str:
    return str(uuid.uuid4())


class Gateway(ABC):
    """The error envelope of one vendor host, for failures before a request reaches an API."""

    @abstractmethod
    def error(self, status: int, reason: str, message: str) -> web.Response:
        """An error answer; ``reason`` is an upper-case code such as ``INVALID_API_KEY``."""


class NovitaGateway(Gateway):
    """Novita's unified body ``{"code": <http status>, "reason", "message", "metadata"}``."""

    def error(self, status: int, reason: str, message: str) -> web.Response:
        """An error in Novita's envelope."""
        body = {"code": status, "reason": reason, "message": message, "metadata": {}}
        return web.json_response(body, status=status)


class GptGeGateway(Gateway):
    """gpt.ge's new-api gateway body ``{"error": {"message", "type", "code"}}``."""

    def error(self, status: int, reason: str, message: str) -> web.Response:
        """An error in the gateway's envelope."""
        body = {"error": {"message": message, "type": "new_api_error", "code": reason.lower()}}
        return web.json_response(body, status=status)


NOVITA = NovitaGateway()
GPTGE = GptGeGateway()


class Renderer(ABC):
    """One API: its routes, task ids, how a submit becomes a `Plan`, and its answer bodies."""

    api: ClassVar[str]
    gateway: ClassVar[Gateway]
    submit_routes: ClassVar[tuple[str, ...]]
    url_ttl: ClassVar[int] = HOUR

    def new_task_id(self) -> str:
        """A task id in the vendor's style."""
        return str(uuid.uuid4())

    def invalid(self, message: str) -> web.Response:
        """The answer to a body that fails validation."""
        return self.gateway.error(400, "INVALID_REQUEST_BODY", message)

    def not_found(self, task_id: str) -> web.Response:
        """The answer for a task the vendor does not know (any more)."""
        return self.gateway.error(404, "TASK_NOT_FOUND", f"task {task_id} not found")

    @abstractmethod
    def plan(self, path: str, body: dict[str, Any], pick_seed: SeedPicker) -> Plan:
        """Read a validated submit body."""

    @abstractmethod
    def submitted(self, task: Task) -> dict[str, Any]:
        """The body of the submit answer."""

    @abstractmethod
    def result(self, view: View) -> web.Response:
        """The answer to a poll."""


class NovitaRenderer(Renderer):
    """Novita v3 async: img2img, txt2img and any other ``/v3/async/<endpoint>``."""

    api = "novita"
    gateway = NOVITA
    submit_routes = (f"{ASYNC_PREFIX}{{endpoint}}",)
    _statuses: ClassVar[dict[TaskStatus, str]] = {
        TaskStatus.QUEUED: "TASK_STATUS_QUEUED",
        TaskStatus.RUNNING: "TASK_STATUS_PROCESSING",
        TaskStatus.SUCCEEDED: "TASK_STATUS_SUCCEED",
        TaskStatus.FAILED: "TASK_STATUS_FAILED",
    }
    _task_types: ClassVar[dict[str, str]] = {
        "img2img": "IMG_TO_IMG",
        "txt2img": "TXT_TO_IMG",
        "txt2video": "TXT_TO_VIDEO",
        "img2video": "IMG_TO_VIDEO",
    }

    @staticmethod
    def _bounded(fields: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
        value = fields.get(name)
        if value is None:
            return default
        number = integer(value)
        if number is None or not low <= number <= high:
            raise GenMediaValidationError(name, f"must be an integer from {low} to {high}")
        return number

    def plan(self, path: str, body: dict[str, Any], pick_seed: SeedPicker) -> Plan:
        """Sizes, count, seed and input image from ``request`` (or the flat body); formats from ``extra``."""
        extra = validate_model(NovitaExtra, mapping(body.get("extra")), prefix="extra")
        fields = mapping(body.get("request")) or body
        prompt = " ".join(_texts(body, ("prompt",)))
        seed = pick_seed(fields.get("seed"))
        if VIDEO_ENDPOINT.search(path.removeprefix(ASYNC_PREFIX)):
            video_type = extra.response_video_type or "mp4"
            width = self._bounded(fields, "width", DEFAULT_VIDEO_SIZE[0], 16, 2048)
            height = self._bounded(fields, "height", DEFAULT_VIDEO_SIZE[1], 16, 2048)
            return Plan(prompt, {f"0.{video_type}": MediaSpec("video", video_type, width, height, seed)}, seed)
        image_type = extra.response_image_type or "png"
        images = (self._image(fields.get(name)) for name in ("image_base64", "image_file", "image"))
        source = next(filter(None, images), None)
        source_size = (image_size(source) if source else None) or (DEFAULT_IMAGE_SIDE, DEFAULT_IMAGE_SIDE)
        width = self._bounded(fields, "width", source_size[0], 16, 2048)
        height = self._bounded(fields, "height", source_size[1], 16, 2048)
        count = self._bounded(fields, "image_num", 1, 1, 8)
        files = {
            f"{index}.{image_type}": MediaSpec("image", image_type, width, height, seed + index, source)
            for index in range(count)
        }
        return Plan(prompt, files, seed)

    @staticmethod
    def _image(value: Any) -> bytes | None:
        """The decoded input image, if ``value`` is base64 of one."""
        if not isinstance(value, str):
            return None
        try:
            data = decode_base64(value)
        except ValueError:
            return None
        return data if image_size(data) else None

    def submitted(self, task: Task) -> dict[str, Any]:
        """img2img answers the legacy ``{"code": 0, "msg": "", "data": {"task_id"}}`` of its doc examples."""
        if task.path == f"{ASYNC_PREFIX}img2img":
            return {"code": 0, "msg": "", "data": {"task_id": task.id}}
        return {"task_id": task.id}

    def result(self, view: View) -> web.Response:
        """The task-result body; seeds and URL lifetimes as strings, like the seed examples."""
        task, status, now = view.task, view.status, view.now
        if status is TaskStatus.EXPIRED:
            return self.not_found(task.id)
        endpoint = task.path.removeprefix(ASYNC_PREFIX)
        extra = mapping(task.body.get("extra"))
        nsfw_check = extra.get("enable_nsfw_detection") is True
        progress = {TaskStatus.QUEUED: 0, TaskStatus.RUNNING: task.progress(now)}.get(status)
        if progress is None:  # finished: image tasks report 0, video tasks 100 (seed examples)
            progress = 100 if task.plan.video and status is TaskStatus.SUCCEEDED else 0
        outputs: dict[str, list[dict[str, Any]]] = {"images": [], "videos": [], "audios": []}
        for name, url in view.urls.items():
            spec = task.plan.files[name]
            output: dict[str, Any] = {
                f"{spec.kind}_url": url,
                f"{spec.kind}_url_ttl": str(view.ttl),
                f"{spec.kind}_type": spec.format,
            }
            if spec.kind == "image":
                verdict = {"valid": True, "confidence": 97.5 if task.nsfw_flagged else 1.2}
                output["nsfw_detection_result"] = verdict if nsfw_check else None
            outputs[f"{spec.kind}s"].append(output)
        body = {
            "extra": {
                "seed": str(task.plan.seed),
                "enable_nsfw_detection": nsfw_check,
                "debug_info": {
                    "request_info": "",
                    "submit_time_ms": _millis(task.submitted_at),
                    "execute_time_ms": _millis(task.started_at) if status is not TaskStatus.QUEUED else "",
                    "complete_time_ms": _millis(task.finished_at) if status.is_terminal else "",
                },
            },
            "task": {
                "task_id": task.id,
                "task_type": self._task_types.get(endpoint) or re.sub(r"[^A-Z0-9]+", "_", endpoint.upper()),
                "status": self._statuses[status],
                "reason": view.reason if status is TaskStatus.FAILED else "",
                "eta": task.eta(now),
                "progress_percent": progress,
            },
            **outputs,
        }
        return web.json_response(body)


def _volcengine(code: int, message: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """The Volcengine visual-API envelope gpt.ge passes through for Jimeng."""
    return {
        "code": code,
        "data": data,
        "message": message,
        "request_id": time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(9).upper(),
        "status": code,
        "time_elapsed": f"{secrets.randbelow(100_000) / 1000:.6f}ms",
    }


class JimengRenderer(Renderer):
    """Jimeng video through gpt.ge, in the Volcengine envelope."""

    api = "jimeng"
    gateway = GPTGE
    submit_routes = (jimeng.TEXT2VIDEO_PATH, jimeng.IMAGE2VIDEO_PATH)
    _sizes: ClassVar[dict[str, tuple[int, int]]] = {
        "16:9": (1280, 720),
        "9:16": (720, 1280),
        "9:21": (720, 1680),
        "1:1": (960, 960),
        "4:3": (960, 720),
        "3:4": (720, 960),
        "21:9": (1680, 720),
    }
    _states: ClassVar[dict[TaskStatus, str]] = {
        TaskStatus.QUEUED: "in_queue",
        TaskStatus.RUNNING: "generating",
        TaskStatus.SUCCEEDED: "done",
        TaskStatus.EXPIRED: "expired",
    }
    #: "Post Text Risk Not Pass": how Volcengine reports a generation it refused.
    failure_code = 50413

    def new_task_id(self) -> str:
        """A numeric string of 20 digits, like ``14117763723766220057``."""
        return str(10**19 + secrets.randbelow(9 * 10**19))

    def invalid(self, message: str) -> web.Response:
        """Volcengine's 50215 ``Input invalid``."""
        return web.json_response(_volcengine(50215, f"Input invalid: {message}", None), status=400)

    def plan(self, path: str, body: dict[str, Any], pick_seed: SeedPicker) -> Plan:
        """One 5 s MP4 in the asked aspect ratio."""
        seed = pick_seed(body.get("seed"))
        width, height = self._sizes[body.get("aspect_ratio", "16:9")]
        return Plan(body["prompt"], {"video.mp4": MediaSpec("video", "mp4", width, height, seed)}, seed)

    def submitted(self, task: Task) -> dict[str, Any]:
        """``{"code": 10000, "data": {"task_id"}, ...}``."""
        return _volcengine(10000, "Success", {"task_id": task.id})

    def result(self, view: View) -> web.Response:
        """``data.status`` in_queue, generating, done (with ``resp_data`` as a JSON string) or expired."""
        task, status = view.task, view.status
        if status is TaskStatus.FAILED:
            return web.json_response(_volcengine(self.failure_code, view.reason, None), status=400)
        data: dict[str, Any] = {
            "status": self._states[status],
            "resp_data": "",
            "video_url": "",
            "image_urls": None,
            "binary_data_base64": [],
        }
        if status is TaskStatus.SUCCEEDED:
            spec, video_url = task.plan.files["video.mp4"], view.urls["video.mp4"]
            image2video = task.path == jimeng.IMAGE2VIDEO_PATH
            params = {
                "aspect_ratio": task.body.get("aspect_ratio", "16:9"),
                "fps": 24,
                "frames": 121,
                "width": spec.width,
                "height": spec.height,
                "seed": task.plan.seed,
                "ori_prompt": task.plan.prompt,
                "req_key": "jimeng_vgfm_i2v_l20" if image2video else "jimeng_vgfm_t2v_l20",
                "video_url": video_url,
            }
            context = {
                "algorithm_key": "x2v_scheduler_vgfm",
                "created_at": datetime.fromtimestamp(task.submitted_at, UTC).isoformat(),
                "params": params,
                "request_id": task.id,
                "time_stamp": str(int(task.finished_at)),
            }
            data.update(resp_data=json.dumps({"infer_ctx": context}), video_url=video_url)
        return web.json_response(_volcengine(10000, "Success", data))


def _dashscope_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, bailian.BEIJING).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class BailianRenderer(Renderer):
    """Wan video through gpt.ge, in DashScope's task body."""

    api = "bailian"
    gateway = GPTGE
    submit_routes = (bailian.TEXT2VIDEO_PATH, bailian.IMAGE2VIDEO_PATH)
    url_ttl = 24 * HOUR
    _states: ClassVar[dict[TaskStatus, str]] = {
        TaskStatus.QUEUED: "PENDING",
        TaskStatus.RUNNING: "RUNNING",
        TaskStatus.SUCCEEDED: "SUCCEEDED",
        TaskStatus.FAILED: "FAILED",
        TaskStatus.EXPIRED: "UNKNOWN",
    }

    def invalid(self, message: str) -> web.Response:
        """DashScope's ``InvalidParameter``."""
        body = {"code": "InvalidParameter", "message": message, "request_id": _request_id()}
        return web.json_response(body, status=400)

    def plan(self, path: str, body: dict[str, Any], pick_seed: SeedPicker) -> Plan:
        """One MP4; the seed only when one was given (DashScope does not report it)."""
        seed = body["parameters"].get("seed")
        return Plan(body["input"]["prompt"], {"video.mp4": MediaSpec("video", "mp4", 1280, 720, seed or 0)}, seed)

    def submitted(self, task: Task) -> dict[str, Any]:
        """``{"output": {"task_id", "task_status": "PENDING"}, "request_id"}``."""
        return {"output": {"task_id": task.id, "task_status": "PENDING"}, "request_id": _request_id()}

    def result(self, view: View) -> web.Response:
        """``output.task_status``; ``video_url`` with an ``Expires`` query and ``usage`` on success."""
        task, status = view.task, view.status
        output: dict[str, Any] = {"task_id": task.id, "task_status": self._states[status]}
        body: dict[str, Any] = {"request_id": _request_id(), "output": output}
        if status is TaskStatus.EXPIRED:
            return web.json_response(body)
        output.update(submit_time=_dashscope_time(task.submitted_at), orig_prompt=task.plan.prompt)
        if status is not TaskStatus.QUEUED:
            output["scheduled_time"] = _dashscope_time(task.started_at)
        if status.is_terminal:
            output["end_time"] = _dashscope_time(task.finished_at)
        if status is TaskStatus.FAILED:
            output.update(code="InternalError.Algo", message=view.reason)
        elif status is TaskStatus.SUCCEEDED:
            parameters = task.body["parameters"]
            output["video_url"] = view.urls["video.mp4"]
            if parameters.get("prompt_extend", True):
                output["actual_prompt"] = task.plan.prompt
            body["usage"] = {
                "video_count": 1,
                "video_ratio": parameters.get("size") or parameters.get("resolution"),
                "video_duration": parameters["duration"],
            }
        return web.json_response(body)


class AvatarRenderer(Renderer):
    """Talking-avatar video through gpt.ge, in the flat DreamFace work body."""

    api = "avatar"
    gateway = GPTGE
    submit_routes = (AVATAR_PATH,)
    _web_work_status: ClassVar[dict[TaskStatus, int]] = {
        TaskStatus.QUEUED: 0,
        TaskStatus.RUNNING: 0,
        TaskStatus.SUCCEEDED: 200,
        TaskStatus.FAILED: -1,
    }

    def new_task_id(self) -> str:
        """24 hex digits, like ``67930a6f8d5ac20007a77b1c``."""
        return secrets.token_hex(12)

    def invalid(self, message: str) -> web.Response:
        """The upstream ``{"code", "message", "data"}`` wrapper."""
        return web.json_response({"code": 400, "message": message, "data": None}, status=400)

    def plan(self, path: str, body: dict[str, Any], pick_seed: SeedPicker) -> Plan:
        """A watermarked and a clean MP4; markers are searched in the URLs and the spoken text."""
        prompt = " ".join(_texts(body, ("avatar_url", "audio_url", "text")))
        files = {name: MediaSpec("video", "mp4", *DEFAULT_VIDEO_SIZE, 0) for name in ("wm.mp4", "no_wm.mp4")}
        return Plan(prompt, files)

    def submitted(self, task: Task) -> dict[str, Any]:
        """``{"code": 0, "data": {"id"}}``."""
        return {"code": 0, "data": {"id": task.id}}

    def result(self, view: View) -> web.Response:
        """``web_work_status`` 0 while running, 200 done, -1 failed; the three video paths when done."""
        task, status = view.task, view.status
        if status is TaskStatus.EXPIRED:
            return self.not_found(task.id)
        created_ms = int(task.submitted_at * 1000)
        clean, marked = view.urls.get("no_wm.mp4", ""), view.urls.get("wm.mp4", "")
        body = {
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
        return web.json_response(body)


RENDERERS: dict[str, Renderer] = {
    renderer.api: renderer for renderer in (NovitaRenderer(), JimengRenderer(), BailianRenderer(), AvatarRenderer())
}
