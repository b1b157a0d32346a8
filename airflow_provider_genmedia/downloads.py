"""Streamed downloads of vendor outputs and input images: bounded memory, SHA-256 on the way, http(s) only.

A transient failure (connection error, timeout, a body cut short, HTTP 429 or 5xx) is retried a few times with
backoff, the file rewritten from where the download started. Signed links carry their credentials in the query
string, so every URL shown in a message or a log line goes through `public_url` first.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import requests
from tenacity import Retrying

from airflow_provider_genmedia.exceptions import GenMediaError, GenMediaValidationError
from airflow_provider_genmedia.hooks.retries import parse_retry_after, retry_policy, retryable_read

log = logging.getLogger(__name__)

#: Bytes read from the network and written per step: the memory a download holds, whatever the file size.
CHUNK_SIZE = 1024 * 1024
#: The default size limit of one output (2 GiB): larger downloads are refused.
DEFAULT_MAX_BYTES = 2 * 1024**3
#: Connect and read timeouts of a download, in seconds (the read timeout applies between chunks).
DOWNLOAD_TIMEOUT = (10.0, 60.0)
#: How an expired or revoked presigned link answers (S3, OSS and the emulator say 403).
EXPIRED_LINK_STATUSES = frozenset({403, 410})
#: Answers that may pass: slow down, or the store or its gateway failed.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Tries of one download before a transient failure is raised (the first one included); the waits between them are
#: the provider's one retry policy (`airflow_provider_genmedia.hooks.retries`).
DOWNLOAD_ATTEMPTS = 4


class MediaDownloadError(GenMediaError):
    """A download failed: an HTTP error, a connection cut short, or an upload that did not verify.

    ``status_code`` is the HTTP status the server answered, if any; ``retry_after`` its ``Retry-After`` in seconds.
    """

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None) -> None:
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(message)

    @property
    def transient(self) -> bool:
        """A 429 or a 5xx of the object store or its gateway may pass."""
        return self.status_code in TRANSIENT_STATUSES


class MediaConnectionError(MediaDownloadError):
    """The server could not be reached, did not answer in time, or cut the file short."""

    @property
    def transient(self) -> bool:
        """A network failure may pass."""
        return True


class LinkExpiredError(MediaDownloadError):
    """The presigned link answered 403/410: it expired or its signature no longer holds."""

    @property
    def transient(self) -> bool:
        """Asking again gets the same answer: only a freshly signed link helps."""
        return False


class MediaTooLargeError(MediaDownloadError):
    """The file is larger than the size limit: refused before or while streaming, never stored."""

    @property
    def transient(self) -> bool:
        """The file will not shrink."""
        return False


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
    """Stream ``url`` into ``file`` from its current position one chunk at a time, hashing as it goes.

    A transient failure (connection error, timeout, a body cut short, HTTP 429/500/502/503/504) is retried up to
    `DOWNLOAD_ATTEMPTS` tries in all, after the server's ``Retry-After`` or an exponential backoff with jitter; each
    try rewrites ``file`` from where this download started, so the SHA-256 and size are those of the final bytes.
    Anything else (an expired link, a file over ``max_bytes``, another status) is raised at once.
    """
    check_http_url(url)
    start = file.tell()

    def attempt() -> Download:
        file.seek(start)
        file.truncate()
        return _download_once(url, file, max_bytes=max_bytes, chunk_size=chunk_size, session=session)

    return Retrying(**retry_policy(DOWNLOAD_ATTEMPTS - 1, retryable_read, log))(attempt)


def _download_once(
    url: str, file: IO[bytes], *, max_bytes: int, chunk_size: int, session: requests.Session | None
) -> Download:
    """One try of `download_to`: every error says whether it is worth another (``transient``)."""
    shown = public_url(url)
    query = urlsplit(url).query
    digest, size = hashlib.sha256(), 0
    getter = session.get if session is not None else requests.get
    try:
        with getter(url, stream=True, timeout=DOWNLOAD_TIMEOUT, headers={"Accept-Encoding": "identity"}) as response:
            status = response.status_code
            if status in EXPIRED_LINK_STATUSES:
                raise LinkExpiredError(f"GET {shown} answered HTTP {status}: the link expired", status_code=status)
            if status != 200:
                retry_after = parse_retry_after(response.headers)
                raise MediaDownloadError(
                    f"GET {shown} answered HTTP {status}", status_code=status, retry_after=retry_after
                )
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
        message = f"GET {shown} failed ({detail.replace(query, '...') if query else detail})"
        network = isinstance(
            error, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError
        )
        raise (MediaConnectionError if network else MediaDownloadError)(message) from None
    if expected is not None and size != expected:
        raise MediaConnectionError(f"GET {shown} was cut short: {size} of {expected} bytes")
    return Download(digest.hexdigest(), size, content_type)
