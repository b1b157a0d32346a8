"""Streamed downloads of vendor outputs and input images: bounded memory, SHA-256 on the way, http(s) only.

Signed links carry their credentials in the query string, so every URL shown in a message goes through
`public_url` first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import requests

from airflow_provider_genmedia.exceptions import GenMediaError, GenMediaValidationError

#: Bytes read from the network and written per step: the memory a download holds, whatever the file size.
CHUNK_SIZE = 1024 * 1024
#: The default size limit of one output (2 GiB): larger downloads are refused.
DEFAULT_MAX_BYTES = 2 * 1024**3
#: Connect and read timeouts of a download, in seconds (the read timeout applies between chunks).
DOWNLOAD_TIMEOUT = (10.0, 60.0)
#: How an expired or revoked presigned link answers (S3, OSS and the emulator say 403).
EXPIRED_LINK_STATUSES = frozenset({403, 410})


class MediaDownloadError(GenMediaError):
    """A download failed: an HTTP error, a connection cut short, or an upload that did not verify."""


class LinkExpiredError(MediaDownloadError):
    """The presigned link answered 403/410: it expired or its signature no longer holds."""


class MediaTooLargeError(MediaDownloadError):
    """The file is larger than the size limit: refused before or while streaming, never stored."""


def public_url(url: str) -> str:
    """``url`` without query string, fragment and credentials (signatures live there): safe to log and store."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def is_http_url(value: Any) -> bool:
    """True for an absolute http(s) URL (which a vendor can fetch itself)."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value.strip())
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def check_http_url(url: str, field: str = "url") -> None:
    """Refuse anything but an absolute http(s) URL, before any I/O."""
    if not is_http_url(url):
        scheme = urlsplit(url).scheme
        scheme = f"{scheme}://" if scheme else "a URL without a scheme"
        raise GenMediaValidationError(field, f"only http(s) links are downloaded, not {scheme} ({public_url(url)})")


@dataclass(frozen=True)
class Download:
    """What a streamed download wrote: its SHA-256, its size and the server's content type."""

    sha256: str
    size: int
    content_type: str | None


def download_to(
    url: str,
    file: IO[bytes],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    chunk_size: int = CHUNK_SIZE,
    session: requests.Session | None = None,
) -> Download:
    """Stream ``url`` into ``file`` one chunk at a time, hashing as it goes; raise if it is cut short or too big."""
    check_http_url(url)
    shown = public_url(url)
    query = urlsplit(url).query
    digest, size = hashlib.sha256(), 0
    getter = session.get if session is not None else requests.get
    try:
        with getter(url, stream=True, timeout=DOWNLOAD_TIMEOUT, headers={"Accept-Encoding": "identity"}) as response:
            if response.status_code in EXPIRED_LINK_STATUSES:
                raise LinkExpiredError(f"GET {shown} answered HTTP {response.status_code}: the link expired")
            if response.status_code != 200:
                raise MediaDownloadError(f"GET {shown} answered HTTP {response.status_code}")
            announced = response.headers.get("Content-Length", "")
            expected = int(announced) if announced.isdigit() else None
            if expected is not None and expected > max_bytes:
                raise MediaTooLargeError(f"{shown} is {expected} bytes, over the limit of {max_bytes} (max_bytes)")
            for chunk in response.iter_content(chunk_size):
                size += len(chunk)
                if size > max_bytes:
                    raise MediaTooLargeError(f"{shown} exceeds the limit of {max_bytes} bytes (max_bytes)")
                digest.update(chunk)
                file.write(chunk)
            content_type = response.headers.get("Content-Type")
    except requests.RequestException as error:
        detail = f"{type(error).__name__}: {error}"
        raise MediaDownloadError(f"GET {shown} failed ({detail.replace(query, '...') if query else detail})") from None
    if expected is not None and size != expected:
        raise MediaDownloadError(f"GET {shown} was cut short: {size} of {expected} bytes")
    return Download(digest.hexdigest(), size, content_type)
