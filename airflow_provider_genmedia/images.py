"""Image bytes: their size, and scaling one down to a vendor's limits (Pillow only, imported when a function runs:
the operators that import this module are imported by every DAG file that uses them, at every parse)."""

from __future__ import annotations

import io

from airflow_provider_genmedia.exceptions import GenMediaValidationError


def image_size(data: bytes, *, field: str = "image") -> tuple[int, int]:
    """The (width, height) of image bytes; a `GenMediaValidationError` naming ``field`` when they are not an image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (OSError, ValueError):
        raise GenMediaValidationError(field, "is not a readable image") from None


def image_mime_type(data: bytes, *, field: str = "image") -> str:
    """The MIME type of image bytes; a `GenMediaValidationError` naming ``field`` when they are not an image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.get_format_mimetype() or "application/octet-stream"
    except (OSError, ValueError):
        raise GenMediaValidationError(field, "is not a readable image") from None


def fit_image(data: bytes, *, max_pixels: int, max_bytes: int) -> bytes:
    """Scale an image down (keeping its aspect ratio and orientation) until it has at most ``max_pixels``
    pixels and ``max_bytes`` bytes; an image already within both limits is returned unchanged."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as opened:
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
