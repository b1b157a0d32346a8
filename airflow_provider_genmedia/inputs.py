"""Read the images users give to operators: a path, an http(s) URL, an ObjectStoragePath, bytes or base64."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk import ObjectStoragePath

from airflow_provider_genmedia.apis.base import decode_base64
from airflow_provider_genmedia.exceptions import GenMediaError, GenMediaValidationError
from airflow_provider_genmedia.results import blob_placeholder, elide_blobs
from airflow_provider_genmedia.urls import is_http_url

if TYPE_CHECKING:
    from airflow_provider_genmedia.safe_fetch import FetchPolicy

#: Inputs fetched from a URL are refused past this size, before they are held whole.
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
_MAX_PATH_CHARS = 4096


def _download(url: str, field: str, policy: FetchPolicy | None) -> bytes:
    # Imported here: requests costs every task process ~30 ms of CPU, and only an image given by URL needs it.
    from airflow_provider_genmedia.downloads import download_to
    from airflow_provider_genmedia.safe_fetch import FetchPolicy, SafeSession

    buffer = io.BytesIO()
    try:
        with SafeSession(policy or FetchPolicy.for_connection(None)) as session:
            download_to(url, buffer, max_bytes=MAX_DOWNLOAD_BYTES, session=session)
    except GenMediaError as error:
        raise GenMediaValidationError(field, f"could not be downloaded: {error}") from None
    return buffer.getvalue()


def is_local_file(text: str) -> bool:
    """True for the path of an existing file; False for anything else, a string too long to be a path included."""
    try:
        return len(text) < _MAX_PATH_CHARS and Path(text).expanduser().is_file()
    except OSError:  # e.g. a base64 string taken for a path: "File name too long"
        return False


def looks_like_path(text: str) -> bool:
    """True for a short string with a ``/`` or a ``.``: a path, never base64 image data (which is far longer)."""
    return len(text) < 64 and ("/" in text or "." in text)


def shown_image(value: Any) -> Any:
    """An image argument as Rendered Templates shows it: a path, URL or URI as given; bytes and base64 (plain or
    data URI) as a short placeholder, never the data."""
    if isinstance(value, bytes | bytearray | memoryview):
        return elide_blobs(value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text or is_http_url(text) or is_local_file(text):
        return value
    if "://" in text[:32] or looks_like_path(text):
        return value  # an object-store URI, or a path that read_image will refuse by name
    return blob_placeholder(value)


def read_image(value: Any, *, field: str = "image", fetch_policy: FetchPolicy | None = None) -> bytes:
    """The bytes of an image given as bytes, a local path, an ``ObjectStoragePath`` or ``scheme://`` URI, an
    http(s) URL (fetched as ``fetch_policy`` allows; None: `safe_fetch.FetchPolicy` with no connection), a data URI
    or plain base64. Ambiguous strings are refused, never guessed as base64."""
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
                return _download(text, field, fetch_policy)
            if text.startswith("data:"):
                return decode_base64(text)
            if "://" in text[:32]:
                return bytes(ObjectStoragePath(text).read_bytes())
            if is_local_file(text):
                return Path(text).expanduser().read_bytes()
            if looks_like_path(text):
                raise GenMediaValidationError(field, f"{text!r} is not an existing file")
            return decode_base64(text)
    except GenMediaValidationError:
        raise
    except ValueError:
        raise GenMediaValidationError(field, "is not a readable file, an http(s) URL or base64 image data") from None
    except OSError as error:
        raise GenMediaValidationError(field, f"could not be read: {error}") from None
    raise GenMediaValidationError(field, f"must be a path, URL, ObjectStoragePath, bytes or base64, not {type(value)}")


class EncodedImage(NamedTuple):
    """An input image as base64, with its MIME type."""

    data: str
    mime_type: str

    @property
    def data_uri(self) -> str:
        """``data:<mime>;base64,<data>``."""
        return f"data:{self.mime_type};base64,{self.data}"


def encode_image(value: Any, *, field: str = "image") -> EncodedImage:
    """Read an image as `read_image` does and encode it as base64 with its MIME type; refuse what is no image."""
    # Imported here: Pillow costs a DAG file's parse, and only an image sent inline needs it.
    from airflow_provider_genmedia.images import image_mime_type

    data = read_image(value, field=field)
    return EncodedImage(base64.b64encode(data).decode(), image_mime_type(data, field=field))
