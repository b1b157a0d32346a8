"""Read the images users give to operators: a path, an http(s) URL, an ObjectStoragePath, bytes or base64."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from airflow.sdk import ObjectStoragePath
from PIL import Image, ImageOps, UnidentifiedImageError

from airflow_provider_genmedia.apis.base import decode_base64
from airflow_provider_genmedia.downloads import MediaDownloadError, download_to, is_http_url
from airflow_provider_genmedia.exceptions import GenMediaValidationError

#: Inputs fetched from a URL are refused past this size, before they are held whole.
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
_MAX_PATH_CHARS = 4096


def _download(url: str, field: str) -> bytes:
    buffer = io.BytesIO()
    try:
        download_to(url, buffer, max_bytes=MAX_DOWNLOAD_BYTES)
    except MediaDownloadError as error:
        raise GenMediaValidationError(field, f"could not be downloaded: {error}") from None
    return buffer.getvalue()


def _is_local_file(text: str) -> bool:
    """True for the path of an existing file; False for anything else, a string too long to be a path included."""
    try:
        return len(text) < _MAX_PATH_CHARS and Path(text).expanduser().is_file()
    except OSError:  # e.g. a base64 string taken for a path: "File name too long"
        return False


def shown_image(value: Any) -> Any:
    """An image argument as Rendered Templates shows it: a path, URL or URI as given; bytes and base64 (plain or
    data URI) as a short placeholder, never the data."""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes elided>"
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text or is_http_url(text) or _is_local_file(text):
        return value
    if "://" in text[:32] or (len(text) < 64 and ("/" in text or "." in text)):
        return value  # an object-store URI, or a path that read_image will refuse by name
    return f"<base64: {len(value)} chars elided>"


def read_image(value: Any, *, field: str = "image") -> bytes:
    """The bytes of an image given as bytes, a local path, an ``ObjectStoragePath`` or ``scheme://`` URI, an
    http(s) URL, a data URI or plain base64. Ambiguous strings are refused, never guessed as base64."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    try:
        if isinstance(value, ObjectStoragePath):
            return bytes(value.read_bytes())
        if isinstance(value, os.PathLike):
            return Path(value).read_bytes()
        if isinstance(value, str):
            text = value.strip()
            if is_http_url(text):
                return _download(text, field)
            if text.startswith("data:"):
                return decode_base64(text)
            if "://" in text[:32]:
                return bytes(ObjectStoragePath(text).read_bytes())
            if _is_local_file(text):
                return Path(text).expanduser().read_bytes()
            if len(text) < 64 and ("/" in text or "." in text):
                raise GenMediaValidationError(field, f"{text!r} is not an existing file")
            return decode_base64(text)
    except GenMediaValidationError:
        raise
    except ValueError:
        raise GenMediaValidationError(field, "is not a readable file, an http(s) URL or base64 image data") from None
    except OSError as error:
        raise GenMediaValidationError(field, f"could not be read: {error}") from None
    raise GenMediaValidationError(field, f"must be a path, URL, ObjectStoragePath, bytes or base64, not {type(value)}")


def image_size(data: bytes, *, field: str = "image") -> tuple[int, int]:
    """The (width, height) of image bytes; a clear error naming ``field`` when they are not an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError):
        raise GenMediaValidationError(field, "is not a readable image") from None


def fit_image(data: bytes, *, max_pixels: int, max_bytes: int) -> bytes:
    """Scale an image down (keeping its aspect ratio and orientation) until it has at most ``max_pixels``
    pixels and ``max_bytes`` bytes; an image already within both limits is returned unchanged."""
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
