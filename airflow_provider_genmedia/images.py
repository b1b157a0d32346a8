"""Image bytes: their size, and scaling one down to a vendor's limits (Pillow only, imported when a function runs:
the operators that import this module are imported by every DAG file that uses them, at every parse).

Every image is opened through `open_image`, where an image over Pillow's pixel limit (``Image.MAX_IMAGE_PIXELS``, a
decompression bomb) is an error, never Pillow's mere warning.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from airflow_provider_genmedia.exceptions import GenMediaValidationError

if TYPE_CHECKING:
    from PIL import ImageFile


@contextmanager
def pixel_limit() -> Iterator[None]:
    """Within the block, Pillow's ``DecompressionBombWarning`` (an image over ``Image.MAX_IMAGE_PIXELS``) is raised."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def open_image(data: bytes, *, field: str = "image") -> ImageFile.ImageFile:
    """Open image bytes (lazily, as Pillow does; use it in ``with``); a `GenMediaValidationError` naming ``field``
    when they are not an image or when it has more pixels than Pillow's limit (a decompression bomb)."""
    from PIL import Image

    try:
        with pixel_limit():
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        limit = Image.MAX_IMAGE_PIXELS
        raise GenMediaValidationError(field, f"has more than {limit} pixels (a decompression bomb?)") from None
    except (OSError, ValueError):
        raise GenMediaValidationError(field, "is not a readable image") from None


def image_size(data: bytes, *, field: str = "image") -> tuple[int, int]:
    """The (width, height) of image bytes; a `GenMediaValidationError` naming ``field`` when they are not an image."""
    with open_image(data, field=field) as image:
        return image.size


def image_mime_type(data: bytes, *, field: str = "image") -> str:
    """The MIME type of image bytes; a `GenMediaValidationError` naming ``field`` when they are not an image."""
    with open_image(data, field=field) as image:
        return image.get_format_mimetype() or "application/octet-stream"


def fit_image(data: bytes, *, max_pixels: int, max_bytes: int) -> bytes:
    """Scale an image down (keeping its aspect ratio and orientation) until it has at most ``max_pixels``
    pixels and ``max_bytes`` bytes; an image already within both limits is returned unchanged."""
    from PIL import Image, ImageOps

    with open_image(data) as opened:
        width, height = opened.size
        if width * height <= max_pixels and len(data) <= max_bytes:
            return data
        image = ImageOps.exif_transpose(opened)
        keeps_alpha = image.mode in ("RGBA", "LA", "P")
        image = image.convert("RGBA" if keeps_alpha else "RGB")
    scale = min(1.0, (max_pixels / (width * height)) ** 0.5)
    while True:
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        buffer = io.BytesIO()
        resized = image.resize(size, Image.Resampling.LANCZOS)
        resized.save(buffer, format="PNG" if keeps_alpha else "JPEG", quality=92)
        if buffer.tell() <= max_bytes:
            return buffer.getvalue()
        scale *= 0.8
