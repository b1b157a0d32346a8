"""Ali Bailian (Wan) video submit bodies on gpt.ge: ``{"model", "input", "parameters"}``.

https://gpt.morphogen.top/en/video/bailian/text-to-video.html and
https://gpt.morphogen.top/en/video/bailian/image-to-video.html; the per-model durations, sizes and resolutions
are DashScope's (https://www.alibabacloud.com/help/en/model-studio/text-to-video-api-reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from genmedia_emulator.schemas.base import VendorSchema

TEXT2VIDEO = "/task/bailian/text2video"
IMAGE2VIDEO = "/task/bailian/image2video"
_480P = ("832*480", "480*832", "624*624")
_720P = ("1280*720", "720*1280", "960*960", "1088*832", "832*1088")
_1080P = ("1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632")


@dataclass(frozen=True)
class Wan:
    """What one model takes: its route, durations, and ``size`` values (t2v) or ``resolution`` values (i2v)."""

    route: str
    durations: tuple[int, ...]
    shapes: tuple[str, ...]


WAN: dict[str, Wan] = {
    "wan2.6-t2v": Wan(TEXT2VIDEO, (5, 10, 15), _720P + _1080P),
    "wan2.5-t2v-preview": Wan(TEXT2VIDEO, (5, 10), _480P + _720P + _1080P),
    "wan2.6-i2v": Wan(IMAGE2VIDEO, (5, 10, 15), ("720P", "1080P")),
    "wan2.6-i2v-flash": Wan(IMAGE2VIDEO, (5, 10, 15), ("720P", "1080P")),
    "wan2.5-i2v-preview": Wan(IMAGE2VIDEO, (5, 10), ("480P", "720P", "1080P")),
}


class Input(VendorSchema):
    """``input``."""

    prompt: str = Field(min_length=1, max_length=2000)
    negative_prompt: str | None = Field(default=None, max_length=500)
    audio_url: str | None = None
    img_url: str | None = None
    template: str | None = None


class Parameters(VendorSchema):
    """``parameters``."""

    size: str | None = None
    resolution: str | None = None
    duration: int
    prompt_extend: bool | None = None
    shot_type: Literal["single", "multi"] | None = None
    seed: int | None = Field(default=None, ge=0, le=2_147_483_647)
    audio: bool | None = None
    watermark: bool | None = None


class Body(VendorSchema):
    """Either route; what the model takes is checked against `WAN`."""

    model: str
    input: Input
    parameters: Parameters

    def on(self, route: str) -> Body:
        """Check the model belongs to ``route`` and its parameters fit the model."""
        wan = WAN.get(self.model)
        if wan is None or wan.route != route:
            models = sorted(name for name, spec in WAN.items() if spec.route == route)
            raise ValueError(f"model: {self.model!r} is not one of {models}")
        shape_field = "size" if route == TEXT2VIDEO else "resolution"
        shape = getattr(self.parameters, shape_field)
        if shape not in wan.shapes:
            raise ValueError(f"parameters.{shape_field}: {shape!r} is not one of {list(wan.shapes)}")
        if self.parameters.duration not in wan.durations:
            raise ValueError(f"parameters.duration: {self.parameters.duration} is not one of {list(wan.durations)}")
        if route == IMAGE2VIDEO and not self.input.img_url:
            raise ValueError("input.img_url: is required")
        return self


class Text2Video(Body):
    """``POST /task/bailian/text2video``."""

    @model_validator(mode="after")
    def _fits(self) -> Text2Video:
        self.on(TEXT2VIDEO)
        return self


class Image2Video(Body):
    """``POST /task/bailian/image2video``."""

    @model_validator(mode="after")
    def _fits(self) -> Image2Video:
        self.on(IMAGE2VIDEO)
        return self


ROUTES: dict[str, type[VendorSchema]] = {TEXT2VIDEO: Text2Video, IMAGE2VIDEO: Image2Video}
