"""Jimeng video submit bodies on gpt.ge.

https://gpt.morphogen.top/en/video/jimeng/generate-text-to-video.html and
https://gpt.morphogen.top/en/video/jimeng/generate-image-to-video.html: ``prompt`` of at most 150 characters,
``seed`` (-1 by default), an aspect-ratio enum (image-to-video adds ``9:21``), and on image2video
``binary_data_base64`` or ``image_urls``, the first taking precedence when both are given.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from genmedia_emulator.schemas.base import VendorSchema

TEXT2VIDEO = "/task/jimeng/text2video"
IMAGE2VIDEO = "/task/jimeng/image2video"
#: The output size of each aspect ratio, as the image-to-video page lists them.
SIZES: dict[str, tuple[int, int]] = {
    "16:9": (1280, 720),
    "9:16": (720, 1280),
    "9:21": (720, 1680),
    "1:1": (960, 960),
    "4:3": (960, 720),
    "3:4": (720, 960),
    "21:9": (1680, 720),
}


class Text2Video(VendorSchema):
    """``POST /task/jimeng/text2video``."""

    prompt: str = Field(min_length=1, max_length=150)
    seed: int = Field(default=-1, ge=-1)
    aspect_ratio: Literal["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"] = "16:9"


class Image2Video(VendorSchema):
    """``POST /task/jimeng/image2video``: at least one input image."""

    prompt: str = Field(min_length=1, max_length=150)
    seed: int = Field(default=-1, ge=-1)
    aspect_ratio: Literal["16:9", "9:16", "9:21", "1:1", "4:3", "3:4", "21:9"] = "16:9"
    binary_data_base64: list[str] | None = None
    image_urls: list[str] | None = None

    @model_validator(mode="after")
    def _an_image(self) -> Image2Video:
        if not (self.binary_data_base64 or self.image_urls):
            raise ValueError("binary_data_base64 or image_urls: an input image is required")
        return self


ROUTES: dict[str, type[VendorSchema]] = {TEXT2VIDEO: Text2Video, IMAGE2VIDEO: Image2Video}
