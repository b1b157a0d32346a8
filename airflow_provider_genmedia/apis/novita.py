"""Novita AI v3 async API: ``POST /v3/async/<endpoint>``, ``GET /v3/async/task-result?task_id=``.

Fields, ranges and enums are those of the vendor's pages: https://novita.ai/docs/api-reference/model-apis-img2img,
https://novita.ai/docs/api-reference/model-apis-txt2img and https://novita.ai/docs/api-reference/model-apis-task-result.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import AfterValidator, Field, model_validator

from airflow_provider_genmedia.apis.base import (
    HttpUrlStr,
    PollSchedule,
    RequestModel,
    TaskApi,
    array,
    decode_base64,
    first_number,
    first_text,
    frame_size,
    integer,
    mapping,
    now_utc,
    number,
    percent,
    seconds,
    text,
)
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.images import image_size
from airflow_provider_genmedia.results import (
    GenerationResult,
    MediaOutput,
    NsfwVerdict,
    TaskProgress,
    TaskStatus,
    Usage,
)

#: img2img input limits: "a maximum resolution of 16 megapixels and a maximum file size of 10 Mb".
MAX_IMAGE_PIXELS = 16 * 1024 * 1024
MAX_IMAGE_BYTES = 10 * 1024 * 1024

Sampler = Literal[
    "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M", "DPM++ SDE", "DPM fast",
    "DPM adaptive", "LMS Karras", "DPM2 Karras", "DPM2 a Karras", "DPM++ 2S a Karras", "DPM++ 2M Karras",
    "DPM++ SDE Karras", "DDIM", "PLMS", "UniPC",
]  # fmt: skip
Preprocessor = Literal[
    "scribble_hed", "softedge_hed", "scribble_hedsafe", "softedge_hedsafe", "depth_midas", "mlsd", "openpose",
    "openpose_face", "openpose_faceonly", "openpose_full", "openpose_hand", "dwpose", "scribble_pidinet",
    "softedge_pidinet", "scribble_pidsafe", "softedge_pidsafe", "normal_bae", "lineart_coarse",
    "lineart_realistic", "lineart_anime", "lineart", "depth_zoe", "shuffle", "mediapipe_face", "canny", "depth",
    "depth_leres", "depth_leres++",
]  # fmt: skip

Unit = Annotated[float, Field(ge=0, le=1)]
#: The width and height Novita accepts, in pixels.
MIN_SIDE, MAX_SIDE = 128, 2048
Side = Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE)]
Prompt = Annotated[str, Field(min_length=1, max_length=1024)]


def check_image(data: bytes) -> tuple[int, int]:
    """Check an img2img input against the vendor's limits; return its (width, height)."""

    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES} bytes (10 MB)")
    try:
        width, height = image_size(data)
    except GenMediaValidationError as error:
        raise ValueError(str(error).removeprefix(f"{error.field}: ")) from None
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(f"image is {width}x{height} ({width * height} pixels); the limit is 16 megapixels")
    return width, height


def _image_base64(value: str) -> str:
    check_image(decode_base64(value))
    return value


ImageBase64 = Annotated[str, AfterValidator(_image_base64)]


class Lora(RequestModel):
    """A LoRA applied to the checkpoint."""

    model_name: str = Field(min_length=1)
    strength: Unit


class Embedding(RequestModel):
    """A textual-inversion embedding."""

    model_name: str = Field(min_length=1)


class ControlNetUnit(RequestModel):
    """One ControlNet conditioning unit."""

    model_name: str = Field(min_length=1)
    image_base64: ImageBase64
    strength: Unit
    preprocessor: Preprocessor | None = None
    guidance_start: Unit | None = None
    guidance_end: Unit | None = None


class ControlNet(RequestModel):
    """The ControlNet configuration."""

    units: list[ControlNetUnit] = Field(min_length=1)


class IpAdapter(RequestModel):
    """An IP-Adapter image prompt."""

    model_name: Literal["ip-adapter_sd15.bin", "ip-adapter_sdxl.bin"]
    image_base64: ImageBase64
    strength: Unit


class HiresFix(RequestModel):
    """txt2img high-resolution fix."""

    target_width: int = Field(ge=128, le=4096)
    target_height: int = Field(ge=128, le=4096)
    strength: Unit | None = None
    upscaler: Literal["RealESRGAN_x4plus_anime_6B", "RealESRNet_x4plus", "Latent"] | None = None


class Refiner(RequestModel):
    """txt2img SDXL refiner switch point."""

    switch_at: Unit


class WebhookTestMode(RequestModel):
    """Webhook test mode: a mock event instead of a real generation."""

    enabled: bool
    return_task_status: Literal["TASK_STATUS_SUCCEED", "TASK_STATUS_FAILED"]


class Webhook(RequestModel):
    """Where Novita posts the task result when the task finishes."""

    url: HttpUrlStr
    test_mode: WebhookTestMode | None = None


class AwsS3Storage(RequestModel):
    """Your own S3 bucket for the outputs."""

    region: str = Field(min_length=1)
    bucket: str = Field(min_length=1)
    path: str = Field(min_length=1)
    save_to_path_directly: bool | None = None


class CustomStorage(RequestModel):
    """Custom storage settings."""

    aws_s3: AwsS3Storage


class EnterprisePlan(RequestModel):
    """Dedicated Endpoints scheduling."""

    enabled: bool = False


class NovitaExtra(RequestModel):
    """The ``extra`` object of the v3 async image and video endpoints."""

    response_image_type: Literal["png", "webp", "jpeg"] | None = None
    response_video_type: Literal["mp4", "gif"] | None = None
    webhook: Webhook | None = None
    custom_storage: CustomStorage | None = None
    enterprise_plan: EnterprisePlan | None = None
    enable_nsfw_detection: bool | None = None
    nsfw_detection_level: Literal[0, 1, 2] | None = None


class _StableDiffusionRequest(RequestModel):
    """The ``request`` fields txt2img and img2img share."""

    model_name: str = Field(min_length=1)
    prompt: Prompt
    negative_prompt: str | None = Field(default=None, max_length=1024)
    width: Side
    height: Side
    image_num: int = Field(ge=1, le=8)
    steps: int = Field(ge=1, le=100)
    guidance_scale: float = Field(ge=1, le=30)
    sampler_name: Sampler
    sd_vae: str | None = None
    seed: int | None = Field(default=None, ge=-1)
    loras: list[Lora] | None = Field(default=None, max_length=5)
    embeddings: list[Embedding] | None = Field(default=None, max_length=5)
    clip_skip: int | None = Field(default=None, ge=1, le=12)


class Img2ImgRequest(_StableDiffusionRequest):
    """The ``request`` object of ``POST /v3/async/img2img``."""

    image_base64: ImageBase64
    strength: Unit | None = None
    controlnet: ControlNet | None = None
    ip_adapters: list[IpAdapter] | None = Field(default=None, max_length=1)


class Txt2ImgRequest(_StableDiffusionRequest):
    """The ``request`` object of ``POST /v3/async/txt2img``."""

    hires_fix: HiresFix | None = None
    refiner: Refiner | None = None
    enable_transparent_background: bool | None = None
    restore_faces: bool | None = None


class Img2ImgBody(RequestModel):
    """The whole body of ``POST /v3/async/img2img``."""

    extra: NovitaExtra | None = None
    request: Img2ImgRequest

    @model_validator(mode="after")
    def _no_video_type(self) -> Img2ImgBody:
        if self.extra is not None and self.extra.response_video_type is not None:
            raise ValueError("extra.response_video_type is for video endpoints, not img2img")
        return self


class Txt2ImgBody(RequestModel):
    """The whole body of ``POST /v3/async/txt2img``."""

    extra: NovitaExtra | None = None
    request: Txt2ImgRequest

    @model_validator(mode="after")
    def _transparent_needs_png(self) -> Txt2ImgBody:
        image_type = self.extra.response_image_type if self.extra else None
        if self.request.enable_transparent_background and image_type not in (None, "png"):
            raise ValueError("request.enable_transparent_background needs extra.response_image_type png")
        return self


_STATUSES = {
    "TASK_STATUS_QUEUED": TaskStatus.QUEUED,
    "TASK_STATUS_PROCESSING": TaskStatus.RUNNING,
    "TASK_STATUS_SUCCEED": TaskStatus.SUCCEEDED,
    "TASK_STATUS_FAILED": TaskStatus.FAILED,
}
_OUTPUTS: tuple[tuple[str, Literal["image", "video", "audio"]], ...] = (
    ("images", "image"),
    ("videos", "video"),
    ("audios", "audio"),
)
ASYNC_PREFIX = "/v3/async/"


#: The longest link lifetime read from ``*_url_ttl`` (a year); a longer or negative one is left unknown.
MAX_LINK_TTL_SECONDS = 366 * 24 * 3600


def _nsfw(value: Any) -> NsfwVerdict | None:
    """``{valid, confidence}`` is a verdict; ``{}`` and null mean no check ran, and so does a confidence outside
    0..100 (no reading of it can be trusted: the output counts as unchecked)."""
    data = mapping(value)
    if "valid" not in data:
        return None
    confidence = number(data.get("confidence"))
    checked = data.get("valid") is True and (confidence is None or 0 <= confidence <= 100)
    return NsfwVerdict(checked=checked, confidence=confidence if checked else None)


class NovitaApi(TaskApi):
    """Novita AI v3 async tasks (img2img, txt2img and any other ``/v3/async/<endpoint>``)."""

    name: ClassVar[str] = "novita"
    conn_type: ClassVar[str] = "novita"
    default_conn_id: ClassVar[str] = "novita_default"
    # Image tasks take seconds and report eta/progress; Novita's own SDKs poll every 0.5-1 s. A queued task tells
    # no eta: then polls come at most 3 s apart.
    poll_schedule: ClassVar[PollSchedule] = PollSchedule(first=2.0, minimum=1.0, maximum=10.0, end_interval=3.0)
    _models: ClassVar[dict[str, type[RequestModel]]] = {
        f"{ASYNC_PREFIX}img2img": Img2ImgBody,
        f"{ASYNC_PREFIX}txt2img": Txt2ImgBody,
    }

    def request_model(self, path: str) -> type[RequestModel] | None:
        """img2img and txt2img bodies are validated field by field; other endpoints as JSON objects."""
        endpoint = path.removeprefix(ASYNC_PREFIX)
        if not path.startswith(ASYNC_PREFIX) or not endpoint or "/" in endpoint or endpoint == "task-result":
            raise GenMediaValidationError("endpoint", f"{path!r} is not a /v3/async/<endpoint> route")
        return self._models.get(path)

    def submit_path(self, request: RequestModel) -> str:
        """The route of an img2img or txt2img body."""
        for path, model in self._models.items():
            if isinstance(request, model):
                return path
        return super().submit_path(request)

    def describe_request(self, body: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """``request.prompt`` and ``request.model_name``; another endpoint's fields at the top of its body."""
        scopes = (body.get("request"), body)
        return first_text(scopes, "prompt"), first_text(scopes, "model_name", "model")

    def requested_usage(self, body: Mapping[str, Any]) -> Usage:
        """Read from ``request`` (txt2img, img2img), ``parameters`` (Wan 2.2+) or the flat body of another endpoint:
        ``image_num`` images (one otherwise); video seconds from ``duration``, or ``frames_num`` at
        ``frames_per_second`` (SVD img2video); the frame size from ``resolution``, ``size`` or ``width`` and
        ``height``. What a body leaves to the endpoint's defaults stays unknown (None)."""
        scopes = (mapping(body.get("request")), mapping(body.get("parameters")), body)
        count = integer(first_number(scopes, "image_num"))
        seconds = first_number(scopes, "duration")
        frames, fps = first_number(scopes, "frames_num"), first_number(scopes, "frames_per_second")
        if seconds is None and frames and fps:
            seconds = frames / fps
        size = first_text(scopes, "resolution", "size") or frame_size(
            (first_number(scopes, "width"), first_number(scopes, "height"))
        )
        return Usage(
            outputs=count if count is not None and count >= 1 else 1,
            video_seconds=seconds if seconds is not None and seconds >= 0 else None,
            resolution=frame_size(size),
        )

    def result_path(self, task_id: str) -> str:
        """``/v3/async/task-result?task_id=...``."""
        return f"{ASYNC_PREFIX}task-result?task_id={quote(task_id, safe='')}"

    def parse_submit(self, body: Any) -> str:
        """``{"task_id"}``, or the legacy ``{"code": 0, "data": {"task_id"}}`` of the img2img examples."""
        data = mapping(body)
        return self.submitted(data.get("task_id") or mapping(data.get("data")).get("task_id"))

    def parse_progress(self, body: Any) -> TaskProgress | None:
        """``task.status`` queued or processing, with ``progress_percent`` and ``eta``."""
        task = mapping(mapping(body).get("task"))
        status = _STATUSES.get(str(task.get("status")), TaskStatus.RUNNING)
        if status.is_terminal:
            return None
        return TaskProgress(status, percent(task.get("progress_percent")), seconds(task.get("eta")))

    def parse_result(self, task_id: str, body: Any, *, received_at: datetime | None = None) -> GenerationResult:
        """Map ``task.status`` and read images, videos and audios with their TTL and NSFW verdicts."""
        received_at = received_at or now_utc()
        data = mapping(body)
        task = mapping(data.get("task"))
        status = _STATUSES.get(str(task.get("status")), TaskStatus.RUNNING)
        outputs = []
        for key, kind in _OUTPUTS:
            for item in map(mapping, array(data.get(key))):
                url = text(item.get(f"{kind}_url"))
                if not url:
                    continue
                ttl = integer(item.get(f"{kind}_url_ttl"))
                ttl = ttl if ttl is not None and 0 < ttl <= MAX_LINK_TTL_SECONDS else None  # past it: not credible
                outputs.append(
                    MediaOutput(
                        url=url,
                        kind=kind,
                        format=text(item.get(f"{kind}_type")),
                        expires_at=received_at + timedelta(seconds=ttl) if ttl else None,
                        nsfw=_nsfw(item.get("nsfw_detection_result")) if kind == "image" else None,
                    )
                )
        return self.result(
            str(task.get("task_id") or task_id),
            data,
            status=status,
            reason=text(task.get("reason")),
            progress=100.0 if status is TaskStatus.SUCCEEDED else percent(task.get("progress_percent")),
            eta_seconds=seconds(task.get("eta")),
            seed=integer(mapping(data.get("extra")).get("seed")),
            outputs=outputs,
        )
