"""Digital-human (talking avatar) video through gpt.ge: ``POST /avatar/generation``, ``GET /avatar/task/{id}``.

The result comes flat (https://gpt.morphogen.top/en/video/digital-human/query-results.html) or wrapped in
``{"code", "data"}`` (https://apifox.com/apidoc/shared/6b8e9d4f-3f69-419a-be26-53e603a2fc2b/api-278032908); both
are read. ``web_work_status`` 200 is done, below 0 failed, anything else still running: only 200 is documented,
the rest is how DreamFace clients read it (docs/vendor-sources.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import Field, model_validator

from airflow_provider_genmedia.apis.base import (
    HttpUrlStr,
    PollSchedule,
    RequestModel,
    first_text,
    integer,
    mapping,
    text,
)
from airflow_provider_genmedia.apis.gptge import GptGeApi
from airflow_provider_genmedia.exceptions import GenMediaAPIError, GenMediaValidationError
from airflow_provider_genmedia.results import GenerationResult, MediaOutput, TaskProgress, TaskStatus, Usage

log = logging.getLogger(__name__)

SUBMIT_PATH = "/avatar/generation"
DONE_STATUS = 200


class CreateVoice(RequestModel):
    """Clone a voice from a sample (at least 20 s) and speak ``text`` with it."""

    audio_url: HttpUrlStr
    language: Literal["zh", "en"]
    text: str = Field(min_length=1)


class UseVoice(RequestModel):
    """Speak ``text`` with an existing voice."""

    voice_engine_id: str = Field(min_length=1)
    audio_id: str | None = None
    language: Literal["zh", "en"]
    text: str = Field(min_length=1)


class AvatarRequest(RequestModel):
    """Body of ``POST /avatar/generation``: an avatar image or video and exactly one voice source."""

    avatar_url: HttpUrlStr
    audio_url: HttpUrlStr | None = None
    create_voice: CreateVoice | None = None
    use_voice: UseVoice | None = None
    no_watermark: bool = False

    @model_validator(mode="after")
    def _exactly_one_voice(self) -> AvatarRequest:
        given = [name for name in ("audio_url", "create_voice", "use_voice") if getattr(self, name) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"give exactly one of audio_url, create_voice, use_voice (got {found})")
        return self


def avatar_task(body: Any) -> dict[str, Any]:
    """The task object of a flat or ``{"code", "data"}``-wrapped answer."""
    data = mapping(body)
    if "web_work_status" not in data and isinstance(data.get("data"), dict):
        return mapping(data["data"])
    return data


class AvatarApi(GptGeApi):
    """Talking-avatar videos through gpt.ge."""

    name: ClassVar[str] = "avatar"
    # Talking-avatar renders take minutes and grow with the audio's length; no progress is reported: from the first
    # minute on, polls come at most 3 s apart (gpt.ge documents no rate limit).
    poll_schedule: ClassVar[PollSchedule] = PollSchedule(
        first=30.0, minimum=10.0, maximum=60.0, end_interval=3.0, earliest_end=60.0
    )
    request_class = AvatarRequest

    def request_model(self, path: str) -> type[RequestModel] | None:
        """The one submit route takes an `AvatarRequest`."""
        if path != SUBMIT_PATH:
            raise GenMediaValidationError("path", f"{path!r} is not the avatar route {SUBMIT_PATH}")
        return AvatarRequest

    def submit_path(self, request: RequestModel) -> str:
        """``/avatar/generation``."""
        return SUBMIT_PATH

    def complete(self, result: GenerationResult, request: Mapping[str, Any] | None, **pricing: Any) -> GenerationResult:
        """The video without watermark (``no_wm_work_video_path``) when the request asked ``no_watermark``, else
        the plain one (``work_video_path``); the video the task gave when it has not the one asked for."""
        completed = super().complete(result, request, **pricing)
        chosen = "no_wm_work_video_path" if request and request.get("no_watermark") else "work_video_path"
        url = text(avatar_task(result.raw).get(chosen))
        if not url or not result.outputs:
            log.warning("avatar task %s has no %s: returning the video it gave", result.task_id, chosen)
            return completed
        return completed.model_copy(update={"outputs": [result.outputs[0].model_copy(update={"url": url})]})

    def requested_usage(self, body: Mapping[str, Any]) -> Usage:
        """One video, as long as its voice track: the request names neither a length (it is the audio's, or the
        spoken text's) nor a frame size (the avatar's), and the task result reports neither."""
        return Usage()

    def describe_request(self, body: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """The text the avatar speaks (``create_voice.text`` or ``use_voice.text``); no prompt with ``audio_url``, and
        never a model (the route names none)."""
        return first_text([body.get("create_voice"), body.get("use_voice")], "text"), None

    def result_path(self, task_id: str) -> str:
        """``/avatar/task/{task_id}``."""
        return f"/avatar/task/{quote(task_id, safe='')}"

    def _check_code(self, body: Any) -> None:
        code, message = self.parse_error(body)
        if integer(code) not in (None, 0, DONE_STATUS):
            raise GenMediaAPIError(str(message or "error"), vendor_code=code, api=self.name)

    def parse_submit(self, body: Any) -> str:
        """``{"code": 0, "data": {"id"}}``, read defensively as ``data.id``, ``id`` or ``task_id``."""
        self._check_code(body)
        data = mapping(body)
        inner = mapping(data.get("data"))
        return self.submitted(inner.get("id") or inner.get("task_id") or data.get("id") or data.get("task_id"))

    def parse_progress(self, body: Any) -> TaskProgress | None:
        """A ``web_work_status`` neither 200 (done) nor below 0 (failed), in an answer without an error code."""
        if "web_work_status" not in mapping(body):
            code, _ = self.parse_error(body)
            if integer(code) not in (None, 0, DONE_STATUS):
                return None
        state = integer(avatar_task(body).get("web_work_status"))
        if state == DONE_STATUS or (state is not None and state < 0):
            return None
        return TaskProgress(TaskStatus.RUNNING)

    def parse_result(self, task_id: str, body: Any, *, received_at: datetime | None = None) -> GenerationResult:
        """200 done (with ``work_video_path``), below 0 failed, anything else running."""
        if "web_work_status" not in mapping(body):
            self._check_code(body)
        task = avatar_task(body)
        state = integer(task.get("web_work_status"))
        fields: dict[str, Any] = {"status": TaskStatus.RUNNING}
        video_url = text(task.get("work_video_path")) or text(task.get("no_wm_work_video_path"))
        if state == DONE_STATUS and video_url:
            output = MediaOutput(url=video_url, kind="video", format="mp4")
            fields.update(status=TaskStatus.SUCCEEDED, progress=100.0, outputs=[output])
        elif state == DONE_STATUS:
            fields.update(status=TaskStatus.FAILED, reason="the task is done but returned no video path")
        elif state is not None and state < 0:
            fields.update(status=TaskStatus.FAILED, reason=f"web_work_status {state}")
        return self.result(str(task.get("id") or task_id), body, **fields)
