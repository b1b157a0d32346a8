"""Real output bytes: Pillow images made from the input image, GIF clips, and the packaged MP4 fixture."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Literal

from PIL import Image, ImageOps

CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "mp4": "video/mp4",
}
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF"}
GIF_FRAMES = 8
GIF_FRAME_MS = 125


@dataclass(frozen=True)
class MediaSpec:
    """One output file: what it is, its size, the seed it is drawn from, and the image it starts from."""

    kind: Literal["image", "video"]
    format: str
    width: int
    height: int
    seed: int
    source: bytes | None = None


def image_size(data: bytes) -> tuple[int, int] | None:
    """The (width, height) of image bytes; None when Pillow cannot read them as an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (OSError, ValueError):
        return None


@cache
def sample_mp4() -> bytes:
    """The packaged MP4 (see media/README.md for how it was made)."""
    return files(__package__).joinpath("media", "sample.mp4").read_bytes()


def _frame(spec: MediaSpec, rng: random.Random) -> Image.Image:
    """The input image fitted to the asked size, or a seeded gradient when there is none."""
    size = (spec.width, spec.height)
    if spec.source is not None:
        with Image.open(io.BytesIO(spec.source)) as source:
            return ImageOps.fit(ImageOps.exif_transpose(source).convert("RGB"), size)
    dark, light = (tuple(rng.randrange(256) for _ in range(3)) for _ in range(2))
    gradient = Image.linear_gradient("L").rotate(rng.randrange(360), expand=True).resize(size)
    return ImageOps.colorize(gradient, dark, light)


def _tinted(base: Image.Image, rng: random.Random, alpha: float) -> Image.Image:
    tint = tuple(rng.randrange(256) for _ in range(3))
    return Image.blend(base, Image.new("RGB", base.size, tint), alpha)


def render(spec: MediaSpec) -> bytes:
    """The bytes of ``spec``: the same spec always gives the same bytes."""
    if spec.format == "mp4":
        return sample_mp4()
    rng = random.Random(spec.seed)
    base = _frame(spec, rng)
    buffer = io.BytesIO()
    if spec.format == "gif":
        frames = [_tinted(base, rng, 0.15 + 0.5 * index / GIF_FRAMES) for index in range(GIF_FRAMES)]
        frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=GIF_FRAME_MS, loop=0)
    else:
        _tinted(base, rng, 0.3).save(buffer, _PIL_FORMATS[spec.format])
    return buffer.getvalue()
