"""Ali Bailian (DashScope Wan) video through gpt.ge: ``POST /task/bailian/text2video|image2video``.

The poll route ``GET /task/{task_id}`` answers the DashScope task body
(https://gpt.morphogen.top/en/video/bailian/query-results.html; its fields and statuses:
https://www.alibabacloud.com/help/en/model-studio/text-to-video-api-reference). Model limits follow the DashScope
documentation, as mirrored by gpt.ge and Novita.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, model_validator

from airflow_provider_genmedia.apis.base import (
    HttpUrlStr,
    PollSchedule,
    RequestModel,
    decode_base64,
    first_number,
    first_text,
    frame_size,
    integer,
    mapping,
    now_utc,
    text,
)
from airflow_provider_genmedia.apis.gptge import GptGeVideoApi, VideoRequest
from airflow_provider_genmedia.exceptions import GenMediaAPIError
from airflow_provider_genmedia.results import GenerationResult, MediaOutput, TaskProgress, TaskStatus, Usage

ROUTE_PREFIX = "/task/bailian"
TEXT2VIDEO_PATH = f"{ROUTE_PREFIX}/text2video"
IMAGE2VIDEO_PATH = f"{ROUTE_PREFIX}/image2video"
#: DashScope keeps tasks and output URLs for 24 hours; ``end_time`` is Beijing time.
URL_LIFETIME = timedelta(hours=24)
BEIJING = timezone(timedelta(hours=8))
MAX_SEED = 2_147_483_647

SIZES_480P = frozenset({"832*480", "480*832", "624*624"})
SIZES_720P = frozenset({"1280*720", "720*1280", "960*960", "1088*832", "832*1088"})
SIZES_1080P = frozenset({"1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632"})


@dataclass(frozen=True)
class WanModel:
    """What one Wan model accepts."""

    image2video: bool
    durations: frozenset[int]
    sizes: frozenset[str] = frozenset()
    resolutions: frozenset[str] = frozenset()
    audio_switch: bool = False


MODELS: dict[str, WanModel] = {
    "wan2.6-t2v": WanModel(False, frozenset({5, 10, 15}), sizes=SIZES_720P | SIZES_1080P),
    "wan2.5-t2v-preview": WanModel(False, frozenset({5, 10}), sizes=SIZES_480P | SIZES_720P | SIZES_1080P),
    "wan2.6-i2v": WanModel(True, frozenset({5, 10, 15}), resolutions=frozenset({"720P", "1080P"})),
    "wan2.6-i2v-flash": WanModel(
        True, frozenset({5, 10, 15}), resolutions=frozenset({"720P", "1080P"}), audio_switch=True
    ),
    "wan2.5-i2v-preview": WanModel(True, frozenset({5, 10}), resolutions=frozenset({"480P", "720P", "1080P"})),
}

_STATUSES = {
    "PENDING": TaskStatus.QUEUED,
    "PRE-PROCESSING": TaskStatus.RUNNING,
    "RUNNING": TaskStatus.RUNNING,
    "POST-PROCESSING": TaskStatus.RUNNING,
    "SUSPENDED": TaskStatus.RUNNING,
    "FAILED": TaskStatus.FAILED,
    "CANCELED": TaskStatus.CANCELED,
    "UNKNOWN": TaskStatus.EXPIRED,
}


class BailianInput(RequestModel):
    """``input``: the prompt and the media the video is made from."""

    prompt: str = Field(min_length=1, max_length=2000)
    negative_prompt: str | None = Field(default=None, max_length=500)
    audio_url: HttpUrlStr | None = None
    img_url: str | None = None
    template: str | None = None

    @model_validator(mode="after")
    def _img_url_is_url_or_base64(self) -> BailianInput:
        if self.img_url is not None and not urlsplit(self.img_url).scheme.startswith("http"):
            try:
                decode_base64(self.img_url)
            except ValueError:
                raise ValueError("img_url must be an http(s) URL or base64 image data") from None
        return self


class BailianParameters(RequestModel):
    """``parameters``: size or resolution, duration and generation switches."""

    size: str | None = Field(default=None, pattern=r"^\d+\*\d+$")
    resolution: Literal["480P", "720P", "1080P"] | None = None
    duration: int = Field(ge=1, le=15)
    prompt_extend: bool | None = None
    shot_type: Literal["single", "multi"] | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    audio: bool | None = None
    watermark: bool | None = None


class BailianVideoRequest(VideoRequest):
    """Body of both Bailian routes: ``{"model", "input", "parameters"}``."""

    model: str = Field(min_length=1)
    input: BailianInput
    parameters: BailianParameters

    @model_validator(mode="after")
    def _check_model_limits(self) -> BailianVideoRequest:
        params, spec = self.parameters, MODELS.get(self.model)
        image2video = spec.image2video if spec else self.input.img_url is not None
        if image2video:
            if self.input.img_url is None:
                raise ValueError(f"input.img_url is required by {self.model}")
            if params.resolution is None or params.size is not None:
                raise ValueError(f"{self.model} takes parameters.resolution (480P/720P/1080P), not size")
        else:
            if self.input.img_url is not None:
                raise ValueError(f"{self.model} is a text-to-video model: input.img_url is not accepted")
            if params.size is None or params.resolution is not None:
                raise ValueError(f"{self.model} takes parameters.size ('W*H'), not resolution")
        if params.shot_type is not None and params.prompt_extend is False:
            raise ValueError("parameters.shot_type needs parameters.prompt_extend true")
        if spec is None:
            return self
        if params.duration not in spec.durations:
            raise ValueError(f"parameters.duration {params.duration} is not one of {sorted(spec.durations)}")
        if params.size is not None and params.size not in spec.sizes:
            raise ValueError(f"parameters.size {params.size} is not one of {sorted(spec.sizes)}")
        if params.resolution is not None and params.resolution not in spec.resolutions:
            raise ValueError(f"parameters.resolution {params.resolution} is not one of {sorted(spec.resolutions)}")
        if params.audio is not None and not spec.audio_switch:
            raise ValueError(f"parameters.audio is only accepted by wan2.6-i2v-flash, not {self.model}")
        return self

    @property
    def is_image2video(self) -> bool:
        """True for the image-to-video route."""
        return self.input.img_url is not None


def _expiry(url: str, output: dict[str, Any], received_at: datetime) -> datetime:
    """The signed URL's ``Expires``, else ``end_time`` + 24 h, else 24 h from now."""
    expires = integer(next(iter(parse_qs(urlsplit(url).query).get("Expires", [])), None))
    if expires:
        with contextlib.suppress(OverflowError, OSError, ValueError):  # a time no calendar holds: read on
            return datetime.fromtimestamp(expires, UTC)
    try:
        ended = datetime.strptime(str(output.get("end_time")), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=BEIJING)
    except ValueError:
        return received_at + URL_LIFETIME
    return (ended + URL_LIFETIME).astimezone(UTC)


class BailianApi(GptGeVideoApi):
    """Wan text-to-video and image-to-video through gpt.ge."""

    name: ClassVar[str] = "bailian"
    route_prefix: ClassVar[str] = ROUTE_PREFIX
    request_class = BailianVideoRequest
    # Wan videos take 1-5 minutes (DashScope docs), which suggest polling about every 15 s; queries are limited to
    # 20 per second per account (https://www.alibabacloud.com/help/en/model-studio/manage-asynchronous-tasks), so
    # polls every 3 s from the first minute on hold up to 60 waits under it (connection extra
    # ``max_polls_per_second`` keeps more under it, at the cost of their lag).
    poll_schedule: ClassVar[PollSchedule] = PollSchedule(
        first=30.0, minimum=5.0, maximum=30.0, end_interval=3.0, earliest_end=60.0
    )

    def _error(self, data: dict[str, Any]) -> GenMediaAPIError:
        code, message = self.parse_error(data)
        return GenMediaAPIError(str(message or "no task in the answer"), vendor_code=code, api=self.name)

    def describe_request(self, body: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """``input.prompt`` and ``model``."""
        return first_text([body.get("input")], "prompt"), first_text([body], "model")

    def requested_usage(self, body: Mapping[str, Any]) -> Usage:
        """One video of ``parameters.duration`` seconds, in ``parameters.size`` (text2video) or
        ``parameters.resolution`` (image2video)."""
        parameters = mapping(body.get("parameters"))
        size = frame_size(first_text([parameters], "size", "resolution"))
        return Usage(video_seconds=first_number([parameters], "duration"), resolution=size)

    def reported_usage(self, body: Mapping[str, Any]) -> Usage | None:
        """DashScope's ``usage``: ``video_count``, ``video_duration`` (or ``output_video_duration``, ``duration``:
        Wan 2.6 with audio) and the frame size ``video_ratio`` (Wan 2.1) or tier ``SR`` (Wan 2.2+)."""
        usage = mapping(body.get("usage"))
        if not usage:
            return None
        count = integer(usage.get("video_count"))
        seconds = first_number([usage], "video_duration", "output_video_duration", "duration")
        tier = integer(usage.get("SR"))
        return Usage(
            outputs=count if count is not None and count >= 0 else 1,
            video_seconds=seconds if seconds is not None and seconds >= 0 else None,
            resolution=frame_size(usage.get("video_ratio")) or (f"{tier}P" if tier else None),
            reported=usage,
        )

    def parse_submit(self, body: Any) -> str:
        """``{"output": {"task_id", "task_status"}, "request_id"}`` (also a bare or ``data``-wrapped id)."""
        data = mapping(body)
        task_id = (
            mapping(data.get("output")).get("task_id")
            or data.get("task_id")
            or mapping(data.get("data")).get("task_id")
        )
        if not task_id:
            raise self._error(data)
        return str(task_id)

    def parse_progress(self, body: Any) -> TaskProgress | None:
        """An ``output.task_status`` that is not final (``PENDING``, ``RUNNING`` and the like)."""
        state = str(mapping(mapping(body).get("output")).get("task_status") or "")
        status = _STATUSES.get(state, TaskStatus.RUNNING)
        if not state or state == "SUCCEEDED" or status.is_terminal:
            return None
        return TaskProgress(status)

    def parse_result(self, task_id: str, body: Any, *, received_at: datetime | None = None) -> GenerationResult:
        """``output.task_status``; ``UNKNOWN`` is expired; FAILED carries ``output.code``/``message``."""
        data = mapping(body)
        output = mapping(data.get("output"))
        if not output:
            raise self._error(data)
        state = str(output.get("task_status") or "")
        fields: dict[str, Any] = {"status": _STATUSES.get(state, TaskStatus.RUNNING)}
        video_url = text(output.get("video_url"))
        if state == "SUCCEEDED" and video_url:
            expires_at = _expiry(video_url, output, received_at or now_utc())
            fields.update(
                status=TaskStatus.SUCCEEDED,
                progress=100.0,
                outputs=[MediaOutput(url=video_url, kind="video", format="mp4", expires_at=expires_at)],
            )
        elif state == "SUCCEEDED":
            fields.update(status=TaskStatus.FAILED, reason="the task succeeded but returned no video_url")
        elif state == "FAILED":
            reason = ": ".join(str(part) for part in (output.get("code"), output.get("message")) if part)
            fields["reason"] = reason or "the task failed"
        elif state == "UNKNOWN":
            fields["reason"] = "task unknown or expired (DashScope keeps tasks for 24 hours)"
        elif state == "CANCELED":
            fields["reason"] = "the task was canceled"
        return self.result(str(output.get("task_id") or task_id), data, **fields)
