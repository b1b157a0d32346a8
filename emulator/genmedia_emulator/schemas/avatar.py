"""The digital-human submit body on gpt.ge: ``POST /avatar/generation``.

https://gpt.morphogen.top/en/video/digital-human/generate.html: ``avatar_url`` (a URI, required) and exactly one
voice source of ``audio_url``, ``create_voice`` and ``use_voice``; ``no_watermark`` false by default.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from genmedia_emulator.schemas.base import VendorSchema

ROUTE = "/avatar/generation"


def _uri(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        raise ValueError("must be an absolute URI")
    return value


Uri = Annotated[str, AfterValidator(_uri)]


class CreateVoice(VendorSchema):
    """Clone a voice from a sample, then speak ``text``."""

    audio_url: Uri
    language: Literal["zh", "en"]
    text: str = Field(min_length=1)


class UseVoice(VendorSchema):
    """Speak ``text`` with an existing voice."""

    voice_engine_id: str = Field(min_length=1)
    audio_id: str | None = None
    language: Literal["zh", "en"]
    text: str = Field(min_length=1)


class Generation(VendorSchema):
    """``POST /avatar/generation``."""

    avatar_url: Uri
    audio_url: Uri | None = None
    create_voice: CreateVoice | None = None
    use_voice: UseVoice | None = None
    no_watermark: bool = False

    @model_validator(mode="after")
    def _one_voice(self) -> Generation:
        voices = [name for name in ("audio_url", "create_voice", "use_voice") if getattr(self, name) is not None]
        if len(voices) != 1:
            raise ValueError(f"exactly one of audio_url, create_voice, use_voice is required, not {voices or 'none'}")
        return self


ROUTES: dict[str, type[VendorSchema]] = {ROUTE: Generation}
