"""Novita AI operators: img2img with the vendor's own field names, and any other ``/v3/async/<endpoint>``."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from airflow_provider_genmedia.apis import TaskApi, get_api
from airflow_provider_genmedia.apis.base import RequestModel, Submission
from airflow_provider_genmedia.apis.novita import (
    ASYNC_PREFIX,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_SIDE,
    MIN_SIDE,
    Img2ImgRequest,
    NovitaExtra,
)
from airflow_provider_genmedia.exceptions import GenMediaValidationError
from airflow_provider_genmedia.images import fit_image, image_size
from airflow_provider_genmedia.inputs import read_image
from airflow_provider_genmedia.operators.base import GenMediaSubmitOperator
from airflow_provider_genmedia.urls import is_http_url

#: The img2img ``request`` fields the operator takes under their own names: all but the image, which ``image`` gives.
REQUEST_FIELDS = tuple(name for name in Img2ImgRequest.model_fields if name != "image_base64")
#: The ``extra`` fields of an image endpoint, under their own names.
EXTRA_FIELDS = tuple(name for name in NovitaExtra.model_fields if name != "response_video_type")


def _takes_json(field: FieldInfo) -> bool:
    """True for a model field whose value is an object or a list (Rendered Templates shows it as JSON)."""
    kinds = [get_origin(kind) or kind for kind in get_args(field.annotation) or (field.annotation,)]
    return any(kind is list or (isinstance(kind, type) and issubclass(kind, BaseModel)) for kind in kinds)


def output_size(width: int, height: int) -> tuple[int, int]:
    """A width and height within Novita's 128..2048 range, multiples of 8, keeping the input's aspect ratio."""
    scale = min(1.0, MAX_SIDE / max(width, height))
    scale = max(scale, MIN_SIDE / min(width, height))

    def side(value: int) -> int:
        return min(max(round(value * scale / 8) * 8, MIN_SIDE), MAX_SIDE)

    return side(width), side(height)


class NovitaImg2ImgOperator(GenMediaSubmitOperator):
    """Restyle an image with Novita's img2img (``POST /v3/async/img2img``) and return the `GenerationResult` json.

    Arguments carry the vendor's field names (https://novita.ai/docs/api-reference/model-apis-img2img), except
    ``image``, which replaces ``image_base64`` and takes a local path, an http(s) URL, an ``ObjectStoragePath``,
    bytes or base64. ``width``/``height`` default to the input's size fitted to 128..2048. An input over 16
    megapixels or 10 MB is refused before anything is sent, unless ``fit_image=True`` scales it down.

    :param image: The input image (``request.image_base64``): a path, http(s) URL, ``ObjectStoragePath``, bytes or
        base64; Rendered Templates shows bytes and base64 as a placeholder.
    :param prompt: What to draw, 1..1024 characters (``request.prompt``).
    :param model_name: The checkpoint's ``sd_name`` (``request.model_name``).
    :param negative_prompt: What to avoid (``request.negative_prompt``).
    :param width: Output width, 128..2048; default: the input's, fitted (``request.width``).
    :param height: Output height, 128..2048; default: the input's, fitted (``request.height``).
    :param image_num: Images to make, 1..8 (``request.image_num``).
    :param steps: Denoising steps, 1..100 (``request.steps``).
    :param guidance_scale: Prompt adherence, 1..30 (``request.guidance_scale``).
    :param sampler_name: One of Novita's samplers, e.g. ``Euler a`` (``request.sampler_name``).
    :param seed: -1 or more; None lets the vendor pick (``request.seed``).
    :param strength: 0..1, how far to move from the input; 1 ignores it (``request.strength``).
    :param clip_skip: 1..12 (``request.clip_skip``).
    :param sd_vae: A VAE's ``sd_name`` (``request.sd_vae``).
    :param loras: Up to 5 ``{"model_name", "strength"}`` (``request.loras``).
    :param embeddings: Up to 5 ``{"model_name"}`` (``request.embeddings``).
    :param controlnet: ``{"units": [...]}`` (``request.controlnet``).
    :param ip_adapters: At most one ``{"model_name", "image_base64", "strength"}`` (``request.ip_adapters``).
    :param response_image_type: ``png``, ``webp`` or ``jpeg`` (``extra.response_image_type``).
    :param enable_nsfw_detection: Score each image for NSFW, at extra cost (``extra.enable_nsfw_detection``).
    :param nsfw_detection_level: 0, 1 or 2 (``extra.nsfw_detection_level``).
    :param webhook: ``{"url", "test_mode"}`` for Novita to call when done (``extra.webhook``).
    :param custom_storage: ``{"aws_s3": {...}}`` to store outputs in your bucket (``extra.custom_storage``).
    :param enterprise_plan: ``{"enabled": bool}``, Dedicated Endpoints only (``extra.enterprise_plan``).
    :param fit_image: Scale an input over 16 MP or 10 MB down instead of refusing it.
    """

    api: ClassVar[TaskApi] = get_api("novita")
    #: Every setting sent to Novita, so that Rendered Templates shows what was asked (media bytes elided).
    template_fields: Sequence[str] = ("image", *REQUEST_FIELDS, *EXTRA_FIELDS, "fit_image", "conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {
        name: "json"
        for model, names in ((Img2ImgRequest, REQUEST_FIELDS), (NovitaExtra, EXTRA_FIELDS))
        for name in names
        if _takes_json(model.model_fields[name])
    }

    def __init__(
        self,
        *,
        image: Any,
        prompt: str,
        model_name: str,
        negative_prompt: str | None = None,
        width: int | None = None,
        height: int | None = None,
        image_num: int = 1,
        steps: int = 20,
        guidance_scale: float = 7.5,
        sampler_name: str = "Euler a",
        seed: int | None = None,
        strength: float | None = None,
        clip_skip: int | None = None,
        sd_vae: str | None = None,
        loras: list[dict[str, Any]] | None = None,
        embeddings: list[dict[str, Any]] | None = None,
        controlnet: dict[str, Any] | None = None,
        ip_adapters: list[dict[str, Any]] | None = None,
        response_image_type: str | None = None,
        enable_nsfw_detection: bool | None = None,
        nsfw_detection_level: int | None = None,
        webhook: dict[str, Any] | None = None,
        custom_storage: dict[str, Any] | None = None,
        enterprise_plan: dict[str, Any] | None = None,
        fit_image: bool = False,
        **kwargs: Any,
    ) -> None:
        vendor_fields = locals()  # the arguments, read before anything else is defined here
        super().__init__(**kwargs)
        self.image = image
        self.fit_image = fit_image
        for name in (*REQUEST_FIELDS, *EXTRA_FIELDS):
            setattr(self, name, vendor_fields[name])

    def _input_image(self) -> tuple[bytes, tuple[int, int]]:
        """The input image's bytes and size, scaled down when ``fit_image`` asks; its limits are checked once, by
        the request model."""
        from airflow_provider_genmedia.hooks.genmedia import fetch_policy_for

        image = self.setting("image")
        # The connection is read only for a link: its origin is the one non-public origin a fetch may reach unlisted.
        policy = fetch_policy_for(self.api, self.conn_id) if is_http_url(image) else None
        data = read_image(image, field="image", fetch_policy=policy)
        if self.fit_image:
            data = fit_image(data, max_pixels=MAX_IMAGE_PIXELS, max_bytes=MAX_IMAGE_BYTES)
        return data, image_size(data, field="image")

    def prepare(self) -> Submission:
        """The checked img2img request; an input over Novita's limits is refused naming ``image`` and the way out."""
        try:
            return super().prepare()
        except GenMediaValidationError as error:
            if error.field != "request.image_base64" or self.fit_image:
                raise
            reason = str(error).removeprefix(f"{error.field}: ")
            raise GenMediaValidationError("image", f"{reason}; fit_image=True scales it down to fit") from None

    def build_request(self) -> tuple[str, Mapping[str, Any]]:
        """The img2img body from the operator's arguments, with the input image read and checked."""
        data, size = self._input_image()
        width, height = output_size(*size)
        request = {name: self.setting(name) for name in REQUEST_FIELDS}
        request.update(
            image_base64=base64.b64encode(data).decode(),
            width=request["width"] or width,
            height=request["height"] or height,
        )
        extra = _given({name: self.setting(name) for name in EXTRA_FIELDS})
        body: dict[str, Any] = {"request": _given(request)}
        if extra:
            body["extra"] = extra
        return f"{ASYNC_PREFIX}img2img", body


def _given(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that were given (not None): an optional field left out is not sent."""
    return {name: value for name, value in fields.items() if value is not None}


class NovitaTaskOperator(GenMediaSubmitOperator):
    """Submit any Novita ``/v3/async/<endpoint>`` body (txt2img, txt2video, wan-t2v, kling, ...) and wait for it.

    txt2img and img2img bodies are validated field by field; other endpoints are sent as given.

    :param endpoint: The part after ``/v3/async/``, e.g. ``txt2img`` or ``wan-t2v``; must be a documented endpoint.
    :param body: The request body as the endpoint documents it; base64 inside shows as a placeholder in Rendered
        Templates.
    """

    api: ClassVar[TaskApi] = get_api("novita")
    template_fields: Sequence[str] = ("endpoint", "body", "conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"body": "json"}

    def __init__(self, *, endpoint: str, body: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.body = body

    def build_request(self) -> tuple[str, RequestModel | Mapping[str, Any]]:
        """``/v3/async/<endpoint>`` and the body as given."""
        endpoint = self.endpoint.strip("/").removeprefix(ASYNC_PREFIX.strip("/")).strip("/")
        return f"{ASYNC_PREFIX}{endpoint}", self.setting("body")
