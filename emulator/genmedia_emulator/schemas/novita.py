"""Novita v3 async submit bodies, and the allowlist of ``/v3/async/<endpoint>`` routes.

Fields, ranges and enums: https://novita.ai/docs/api-reference/model-apis-txt2img,
https://novita.ai/docs/api-reference/model-apis-img2img, https://novita.ai/docs/api-reference/model-apis-txt2video,
https://novita.ai/docs/api-reference/model-apis-img2video, https://novita.ai/docs/api-reference/model-apis-wan-t2v and
https://novita.ai/docs/api-reference/model-apis-wan-i2v. An endpoint outside `ENDPOINTS` answers 404
``API_NOT_FOUND`` (https://novita.ai/docs/api-reference/basic-error-code).
"""

from __future__ import annotations

import io
from typing import Annotated, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import AfterValidator, Field, model_validator

from genmedia_emulator.schemas.base import VendorSchema, base64_bytes, vendor_error

#: img2img: "a maximum resolution of 16 megapixels and a maximum file size of 10 Mb".
MAX_PIXELS = 16 * 1024 * 1024
MAX_BYTES = 10 * 1024 * 1024

Fraction = Annotated[float, Field(ge=0, le=1)]
Text = Annotated[str, Field(min_length=1, max_length=1024)]
SamplerName = Literal[
    "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M", "DPM++ SDE", "DPM fast",
    "DPM adaptive", "LMS Karras", "DPM2 Karras", "DPM2 a Karras", "DPM++ 2S a Karras", "DPM++ 2M Karras",
    "DPM++ SDE Karras", "DDIM", "PLMS", "UniPC",
]  # fmt: skip


def _picture(value: str) -> str:
    """An input image within the documented file size and resolution, with the error reasons Novita names."""
    data = base64_bytes(value)
    if len(data) > MAX_BYTES:
        raise vendor_error("IMAGE_FILE_EXCEEDS_MAX_SIZE", "the image is over 10 MB")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError):
        raise vendor_error("INVALID_IMAGE_FORMAT", "is not an image") from None
    if width * height > MAX_PIXELS:
        raise vendor_error("IMAGE_EXCEEDS_MAX_RESOLUTION", "the image is over 16 megapixels")
    return value


Picture = Annotated[str, AfterValidator(_picture)]


class WebhookTestMode(VendorSchema):
    """``extra.webhook.test_mode``."""

    enabled: bool
    return_task_status: Literal["TASK_STATUS_SUCCEED", "TASK_STATUS_FAILED"]


class Webhook(VendorSchema):
    """``extra.webhook``."""

    url: str = Field(min_length=1)
    test_mode: WebhookTestMode | None = None


class AwsS3(VendorSchema):
    """``extra.custom_storage.aws_s3``."""

    region: str = Field(min_length=1)
    bucket: str = Field(min_length=1)
    path: str = Field(min_length=1)
    save_to_path_directly: bool | None = None


class CustomStorage(VendorSchema):
    """``extra.custom_storage`` (the SDK sends ``{}``, which counts as absent)."""

    aws_s3: AwsS3


class EnterprisePlan(VendorSchema):
    """``extra.enterprise_plan``."""

    enabled: bool = False


class Extra(VendorSchema):
    """The ``extra`` object the legacy endpoints share."""

    response_image_type: Literal["png", "webp", "jpeg"] | None = None
    response_video_type: Literal["mp4", "gif"] | None = None
    webhook: Webhook | None = None
    custom_storage: CustomStorage | None = None
    enterprise_plan: EnterprisePlan | None = None
    enable_nsfw_detection: bool | None = None
    nsfw_detection_level: Literal[0, 1, 2] | None = None


class LoRA(VendorSchema):
    """A LoRA of the SD endpoints."""

    model_name: str = Field(min_length=1)
    strength: Fraction


class Embedding(VendorSchema):
    """A textual-inversion embedding."""

    model_name: str = Field(min_length=1)


class SdFields(VendorSchema):
    """The ``request`` fields txt2img and img2img share (``negative_prompt: ""`` is in the img2img example)."""

    model_name: str = Field(min_length=1)
    prompt: Text
    negative_prompt: str | None = Field(default=None, max_length=1024)
    width: int = Field(ge=128, le=2048)
    height: int = Field(ge=128, le=2048)
    image_num: int = Field(ge=1, le=8)
    steps: int = Field(ge=1, le=100)
    guidance_scale: float = Field(ge=1, le=30)
    sampler_name: SamplerName
    sd_vae: str | None = None
    seed: int | None = Field(default=None, ge=-1)
    loras: list[LoRA] | None = Field(default=None, max_length=5)
    embeddings: list[Embedding] | None = Field(default=None, max_length=5)
    clip_skip: int | None = Field(default=None, ge=1, le=12)


class ControlNetUnit(VendorSchema):
    """One ``request.controlnet.units[]`` entry."""

    model_name: str = Field(min_length=1)
    image_base64: Picture
    strength: Fraction
    preprocessor: str | None = None
    guidance_start: Fraction | None = None
    guidance_end: Fraction | None = None


class ControlNet(VendorSchema):
    """``request.controlnet``."""

    units: list[ControlNetUnit]


class IpAdapter(VendorSchema):
    """``request.ip_adapters[]``."""

    model_name: Literal["ip-adapter_sd15.bin", "ip-adapter_sdxl.bin"]
    image_base64: Picture
    strength: Fraction


class Img2ImgFields(SdFields):
    """``request`` of img2img."""

    image_base64: Picture
    strength: Fraction | None = None
    controlnet: ControlNet | None = None
    ip_adapters: list[IpAdapter] | None = Field(default=None, max_length=1)


class HiresFix(VendorSchema):
    """``request.hires_fix`` of txt2img."""

    target_width: int = Field(ge=128, le=4096)
    target_height: int = Field(ge=128, le=4096)
    strength: Fraction | None = None
    upscaler: Literal["RealESRGAN_x4plus_anime_6B", "RealESRNet_x4plus", "Latent"] | None = None


class Refiner(VendorSchema):
    """``request.refiner`` of txt2img."""

    switch_at: Fraction


class Txt2ImgFields(SdFields):
    """``request`` of txt2img."""

    hires_fix: HiresFix | None = None
    refiner: Refiner | None = None
    enable_transparent_background: bool | None = None
    restore_faces: bool | None = None


class WithExtra(VendorSchema):
    """Any body with the shared ``extra`` object."""

    extra: Extra | None = None


class Txt2Img(WithExtra):
    """``POST /v3/async/txt2img``."""

    request: Txt2ImgFields


class Img2Img(WithExtra):
    """``POST /v3/async/img2img``."""

    request: Img2ImgFields


class VideoPrompt(VendorSchema):
    """One ``prompts[]`` entry of txt2video."""

    frames: int = Field(ge=8, le=64)
    prompt: Text


class Txt2Video(WithExtra):
    """``POST /v3/async/txt2video``: a flat body, at most 128 frames in all."""

    model_name: str = Field(min_length=1)
    width: int = Field(ge=256, le=1024)
    height: int = Field(ge=256, le=1024)
    steps: int = Field(ge=1, le=50)
    prompts: list[VideoPrompt] = Field(min_length=1)
    negative_prompt: str | None = Field(default=None, max_length=1024)
    guidance_scale: float | None = Field(default=None, ge=1, le=30)
    seed: int | None = Field(default=None, ge=-1)
    loras: list[LoRA] | None = Field(default=None, max_length=5)
    embeddings: list[Embedding] | None = Field(default=None, max_length=5)
    closed_loop: bool | None = None
    clip_skip: int | None = Field(default=None, ge=1, le=12)

    @model_validator(mode="after")
    def _frames_in_all(self) -> Txt2Video:
        if sum(prompt.frames for prompt in self.prompts) > 128:
            raise ValueError("prompts: more than 128 frames in all")
        return self


class Img2Video(WithExtra):
    """``POST /v3/async/img2video`` (SVD)."""

    model_name: Literal["SVD-XT", "SVD"]
    image_file: str = Field(min_length=1)
    frames_num: Literal[14, 25]
    frames_per_second: Literal[6]
    image_file_resize_mode: Literal["ORIGINAL_RESOLUTION", "CROP_TO_ASPECT_RATIO"]
    steps: int = Field(ge=1, le=50)
    seed: int | None = Field(default=None, ge=-1)
    motion_bucket_id: int | None = Field(default=None, ge=1, le=255)
    cond_aug: Fraction | None = None
    enable_frame_interpolation: bool | None = None


class WanLoRA(VendorSchema):
    """A Wan 2.1 LoRA: a Hugging Face repo or Civitai URL."""

    path: str = Field(min_length=1)
    scale: float = Field(ge=0, le=4)


class WanText2Video(WithExtra):
    """``POST /v3/async/wan-t2v`` (Wan 2.1): one of four sizes, 832x480 by default."""

    prompt: str = Field(min_length=1, max_length=2000)
    negative_prompt: str | None = Field(default=None, max_length=2000)
    width: Literal[480, 720, 832, 1280] = 832
    height: Literal[480, 720, 832, 1280] = 480
    loras: list[WanLoRA] | None = Field(default=None, max_length=3)
    seed: int | None = Field(default=None, ge=-1, le=9_999_999_999)
    steps: int | None = Field(default=None, ge=1, le=40)
    guidance_scale: float | None = Field(default=None, ge=0, le=10)
    flow_shift: float | None = Field(default=None, ge=1, le=10)
    enable_safety_checker: bool | None = None
    fast_mode: bool | None = None

    @model_validator(mode="after")
    def _paired_size(self) -> WanText2Video:
        if (self.width, self.height) not in {(832, 480), (480, 832), (1280, 720), (720, 1280)}:
            raise ValueError(f"width x height {self.width}x{self.height} is not 832x480, 480x832, 1280x720 or 720x1280")
        return self


class WanImage2Video(WanText2Video):
    """``POST /v3/async/wan-i2v`` (Wan 2.1)."""

    image_url: str = Field(min_length=1)


#: Documented endpoints whose bodies the emulator takes as any JSON object (no schema written yet).
GENERIC_ENDPOINTS = (
    "inpainting", "instant-id", "wan-2.2-t2v", "wan-2.2-i2v", "wan2.5-t2v-preview", "wan2.6-t2v", "wan2.7-t2v",
    "wan2.6-i2v", "wan2.7-i2v", "hunyuan-video-fast", "kling-v1.6-i2v", "kling-v2.1-t2v-master",
    "kling-v2.1-i2v-master", "kling-v2.1-i2v", "kling-v3.0-pro-t2v", "kling-v3.0-std-t2v", "kling-v3.0-pro-i2v",
    "kling-v3.0-std-i2v", "seedance-v1-lite-t2v", "seedance-v1-lite-i2v", "seedance-v1-pro-i2v",
    "seedance-v1.5-pro-t2v", "seedance-v1.5-pro-i2v", "minimax-hailuo-02",
)  # fmt: skip
#: Every ``/v3/async/<endpoint>`` the vendor documents, with its schema (None: any JSON object). Sources:
#: the model-apis pages of https://novita.ai/docs/api-reference (one page per endpoint).
ENDPOINTS: dict[str, type[VendorSchema] | None] = {
    "txt2img": Txt2Img,
    "img2img": Img2Img,
    "txt2video": Txt2Video,
    "img2video": Img2Video,
    "wan-t2v": WanText2Video,
    "wan-i2v": WanImage2Video,
    **dict.fromkeys(GENERIC_ENDPOINTS),
}
