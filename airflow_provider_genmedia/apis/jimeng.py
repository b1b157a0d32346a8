"""Jimeng video through gpt.ge: ``POST /task/jimeng/text2video|image2video``, ``GET /task/{task_id}``.

Bodies: https://gpt.morphogen.top/en/video/jimeng/generate-text-to-video.html,
https://gpt.morphogen.top/en/video/jimeng/generate-image-to-video.html and
https://gpt.morphogen.top/en/video/jimeng/query-results.html; codes: Volcengine's table,
https://www.volcengine.com/docs/6444/69728 (the status values and URL lifetime: docs/vendor-sources.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from airflow_provider_genmedia.apis.base import (
    HttpUrlStr,
    PollSchedule,
    decode_base64,
    first_text,
    integer,
    mapping,
    now_utc,
    number,
    text,
)
from airflow_provider_genmedia.apis.gptge import GptGeVideoApi, VideoRequest
from airflow_provider_genmedia.exceptions import (
    GenMediaAPIError,
    GenMediaRateLimitError,
    GenMediaServerError,
)
from airflow_provider_genmedia.results import GenerationResult, MediaOutput, TaskProgress, TaskStatus, Usage

SUCCESS_CODE = 10000
#: Codes that say "try again later" when polling: QPS and concurrency limits, internal errors.
RATE_LIMIT_CODES = frozenset({50429, 50430})
INTERNAL_ERROR_CODES = frozenset({50500, 50501})
#: The upstream (Volcengine) video URL is valid for one hour.
URL_LIFETIME = timedelta(hours=1)

TEXT_ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9")
IMAGE_ASPECT_RATIOS = (*TEXT_ASPECT_RATIOS, "9:21")
AspectRatio = Literal["16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21"]
#: ``resp_data`` is a JSON string whose prompt fields are not always escaped (see the example of
#: https://gpt.morphogen.top/en/video/jimeng/query-results.html), so the seed is found by pattern rather than by
#: decoding it.
_RESP_DATA_SEED = re.compile(r'"seed"\s*:\s*(-?\d+)')
#: The frame count and rate of the video in ``resp_data`` (``"fps": 24, "frames": 121``), found the same way.
_RESP_DATA_FRAMES = re.compile(r'"(fps|frames)"\s*:\s*(\d+(?:\.\d+)?)')
#: Every Jimeng video lasts 5 s: neither route takes a duration.
VIDEO_SECONDS = 5.0
#: The frame size of each aspect ratio, from the image2video page (text2video names 16:9's only, the same).
FRAME_SIZES = {
    "16:9": "1280x720",
    "9:16": "720x1280",
    "9:21": "720x1680",
    "1:1": "960x960",
    "4:3": "960x720",
    "3:4": "720x960",
    "21:9": "1680x720",
}
ROUTE_PREFIX = "/task/jimeng"
TEXT2VIDEO_PATH = f"{ROUTE_PREFIX}/text2video"
IMAGE2VIDEO_PATH = f"{ROUTE_PREFIX}/image2video"


class JimengVideoRequest(VideoRequest):
    """Body of both Jimeng routes; with ``binary_data_base64`` or ``image_urls`` it is image-to-video."""

    prompt: str = Field(min_length=1, max_length=150)
    seed: int = Field(default=-1, ge=-1)
    aspect_ratio: AspectRatio = "16:9"
    binary_data_base64: list[str] | None = Field(default=None, min_length=1)
    image_urls: list[HttpUrlStr] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _check_route_fields(self) -> JimengVideoRequest:
        if self.binary_data_base64 is not None and self.image_urls is not None:
            raise ValueError("give binary_data_base64 or image_urls, not both")
        for index, blob in enumerate(self.binary_data_base64 or []):
            try:
                decode_base64(blob)
            except ValueError:
                raise ValueError(f"binary_data_base64[{index}] is not valid base64") from None
        allowed = IMAGE_ASPECT_RATIOS if self.is_image2video else TEXT_ASPECT_RATIOS
        if self.aspect_ratio not in allowed:
            raise ValueError(f"aspect_ratio {self.aspect_ratio} is not allowed here; use one of {allowed}")
        return self

    @property
    def is_image2video(self) -> bool:
        """True when an input image is given."""
        return bool(self.binary_data_base64 or self.image_urls)


class JimengApi(GptGeVideoApi):
    """Jimeng text-to-video and image-to-video through gpt.ge."""

    name: ClassVar[str] = "jimeng"
    route_prefix: ClassVar[str] = ROUTE_PREFIX
    request_class = JimengVideoRequest
    # 5 s clips take 40-150 s (ComfyUI's Seedance timings); no progress is reported: from 40 s on, polls come at
    # most 3 s apart, so that a finished clip is seen within seconds (gpt.ge documents no rate limit).
    poll_schedule: ClassVar[PollSchedule] = PollSchedule(
        first=20.0, minimum=5.0, maximum=30.0, end_interval=3.0, earliest_end=40.0
    )

    def describe_request(self, body: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """``prompt``; the route names no model, so the model is None unless the body has a ``model``."""
        return first_text([body], "prompt"), first_text([body], "model")

    def requested_usage(self, body: Mapping[str, Any]) -> Usage:
        """One 5 s video, in the frame size of its ``aspect_ratio`` (default 16:9)."""
        ratio = body.get("aspect_ratio") or "16:9"
        return Usage(video_seconds=VIDEO_SECONDS, resolution=FRAME_SIZES.get(str(ratio)))

    def reported_usage(self, body: Mapping[str, Any]) -> Usage | None:
        """The ``fps`` and ``frames`` of ``data.resp_data`` (Volcengine's ``infer_ctx``), when it has both."""
        found = dict(_RESP_DATA_FRAMES.findall(str(mapping(body.get("data")).get("resp_data") or "")))
        fps, frames = number(found.get("fps")), number(found.get("frames"))
        if not fps or frames is None:
            return None
        reported = {
            name: int(value) if value.is_integer() else value for name, value in (("fps", fps), ("frames", frames))
        }
        return Usage(video_seconds=round(frames / fps, 3), reported=reported)

    def parse_submit(self, body: Any) -> str:
        """``{"code": 10000, "data": {"task_id"}}``; any other code is an error."""
        data = mapping(body)
        code = integer(data.get("code"))
        if code != SUCCESS_CODE:
            raise self._code_error(code, data)
        return self.submitted(mapping(data.get("data")).get("task_id"))

    def _code_error(self, code: int | None, data: dict[str, Any]) -> GenMediaAPIError:
        message = str(data.get("message") or "no message")
        if code in RATE_LIMIT_CODES:
            return GenMediaRateLimitError(message, vendor_code=code, api=self.name)
        if code in INTERNAL_ERROR_CODES:
            return GenMediaServerError(message, vendor_code=code, api=self.name)
        return GenMediaAPIError(message, vendor_code=code, api=self.name)

    def task_failure(self, task_id: str, body: Any) -> GenerationResult | None:
        """A risk-control or input verdict (``code`` 50xxx other than limits and internal errors)."""
        data = mapping(body)
        code = integer(data.get("code"))
        if code is None or code == SUCCESS_CODE or code in RATE_LIMIT_CODES | INTERNAL_ERROR_CODES:
            return None
        reason = f"{code} {data.get('message') or ''}".strip()
        return self.result(task_id, data, status=TaskStatus.FAILED, reason=reason)

    def parse_progress(self, body: Any) -> TaskProgress | None:
        """A ``code`` 10000 answer whose ``data.status`` is neither ``done`` nor an expiry."""
        data = mapping(body)
        if integer(data.get("code")) != SUCCESS_CODE:
            return None
        state = str(mapping(data.get("data")).get("status") or "")
        if state in ("done", "not_found", "expired"):
            return None
        return TaskProgress(TaskStatus.QUEUED if state == "in_queue" else TaskStatus.RUNNING)

    def parse_result(self, task_id: str, body: Any, *, received_at: datetime | None = None) -> GenerationResult:
        """``code`` first; then ``data.status``; ``done`` is success only with a video URL."""
        data = mapping(body)
        code = integer(data.get("code"))
        if code != SUCCESS_CODE:
            failure = self.task_failure(task_id, data)
            if failure is None:
                raise self._code_error(code, data)
            return failure
        task = mapping(data.get("data"))
        state = str(task.get("status") or "")
        video_url = text(task.get("video_url"))
        found = _RESP_DATA_SEED.search(str(task.get("resp_data") or ""))
        seed = integer(found.group(1)) if found else None
        fields: dict[str, Any] = {"status": TaskStatus.RUNNING, "seed": seed}
        if state == "in_queue":
            fields["status"] = TaskStatus.QUEUED
        elif state in ("not_found", "expired"):
            fields.update(status=TaskStatus.EXPIRED, reason=f"task {state} (Jimeng keeps tasks for 12 hours)")
        elif state == "done" and video_url:
            expires_at = (received_at or now_utc()) + URL_LIFETIME
            output = MediaOutput(url=video_url, kind="video", format="mp4", expires_at=expires_at)
            fields.update(status=TaskStatus.SUCCEEDED, progress=100.0, outputs=[output])
        elif state == "done":
            fields.update(status=TaskStatus.FAILED, reason="the task is done but returned no video URL")
        return self.result(task_id, data, **fields)
