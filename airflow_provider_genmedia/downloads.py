"""Streamed downloads of vendor outputs and input images: bounded memory, SHA-256 on the way, every link checked by
the caller's `airflow_provider_genmedia.safe_fetch.SafeSession` (http(s) only, no non-public address it does not
trust, each redirect checked).

A transient failure (connection error, timeout, a body cut short, HTTP 429 or 5xx) is retried a few times with
backoff, the file rewritten from where the download started. Failures are the provider's own errors: an HTTP error
status raises the class a vendor's answer would (`api_error_class`), a network failure `GenMediaConnectionError`.
Signed links carry their credentials in the query string, so every URL shown goes through `public_url` first.

``requests`` is imported when a download runs, not with this module: the operators that import this module's
limits are imported by every DAG file that uses them, at every parse.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit

from tenacity import Retrying

from airflow_provider_genmedia.exceptions import (
    GenMediaAPIError,
    GenMediaConnectionError,
    LinkExpiredError,
    MediaTooLargeError,
    api_error_class,
)
from airflow_provider_genmedia.retries import parse_retry_after, retry_policy, retryable_read
from airflow_provider_genmedia.urls import check_http_url, public_url

if TYPE_CHECKING:
    import requests

    from airflow_provider_genmedia.safe_fetch import SafeSession

log = logging.getLogger(__name__)

#: Bytes read from the network and written per step: the memory a download holds, whatever the file size.
CHUNK_SIZE = 1024 * 1024
#: The default size limit of one output (2 GiB): larger downloads are refused.
DEFAULT_MAX_BYTES = 2 * 1024**3
#: Connect and read timeouts of a download, in seconds (the read timeout applies between chunks).
DOWNLOAD_TIMEOUT = (10.0, 60.0)
#: How an expired or revoked presigned link answers (S3, OSS and the emulator say 403).
EXPIRED_LINK_STATUSES = frozenset({403, 410})
#: Tries of one download before a transient failure is raised (the first one included); the waits between them are
#: the provider's one retry policy (`airflow_provider_genmedia.retries`).
DOWNLOAD_ATTEMPTS = 4


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
    session: SafeSession | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    chunk_size: int = CHUNK_SIZE,
) -> Download:
    """Stream ``url`` into ``file`` from its current position one chunk at a time, hashing as it goes.

    A transient failure (connection error, timeout, a body cut short, HTTP 408, 429 or 5xx) is retried up to
    `DOWNLOAD_ATTEMPTS` tries in all, after the server's ``Retry-After`` or an exponential backoff with jitter; each
    try rewrites ``file`` from where this download started, so the SHA-256 and size are those of the final bytes.
    Anything else (an expired link: `LinkExpiredError`, a file over ``max_bytes``: `MediaTooLargeError`, another
    status, a link its session's policy refuses: `LinkRefusedError`) is raised at once. Without ``session``, one of
    its own trusts only the origins of ``[genmedia] allowed_private_origins``.
    """
    check_http_url(url)
    if session is None:
        from airflow_provider_genmedia.safe_fetch import FetchPolicy, SafeSession

        with SafeSession(FetchPolicy.for_connection(None)) as own:
            return download_to(url, file, session=own, max_bytes=max_bytes, chunk_size=chunk_size)
    start = file.tell()

    def attempt() -> Download:
        file.seek(start)
        file.truncate()
        return _download_once(url, file, max_bytes=max_bytes, chunk_size=chunk_size, session=session)

    return Retrying(**retry_policy(DOWNLOAD_ATTEMPTS - 1, retryable_read, log))(attempt)


def _download_once(url: str, file: IO[bytes], *, max_bytes: int, chunk_size: int, session: SafeSession) -> Download:
    """One try of `download_to`: every error says whether it is worth another (``transient``)."""
    import requests

    shown = public_url(url)
    query = urlsplit(url).query
    digest, size = hashlib.sha256(), 0
    try:
        with session.get(
            url, stream=True, timeout=DOWNLOAD_TIMEOUT, headers={"Accept-Encoding": "identity"}
        ) as response:
            status = response.status_code
            if status in EXPIRED_LINK_STATUSES:
                raise LinkExpiredError(f"GET {shown}: the link expired", status_code=status)
            if status != 200:
                retry_after = parse_retry_after(response.headers)
                raise api_error_class(status)(f"GET {shown} failed", status_code=status, retry_after=retry_after)
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
        if isinstance(error, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError):
            raise GenMediaConnectionError(message, connected=not _never_connected(error)) from None
        raise GenMediaAPIError(message) from None
    if expected is not None and size != expected:
        raise GenMediaConnectionError(f"GET {shown} was cut short: {size} of {expected} bytes", connected=True)
    return Download(digest.hexdigest(), size, content_type)


def _never_connected(error: requests.RequestException) -> bool:
    """True when the download failed before a connection was made: refused, host not found, TLS, connect timeout."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError

    if isinstance(error, requests.ConnectTimeout | requests.exceptions.SSLError | requests.exceptions.ProxyError):
        return True
    cause = error.args[0] if error.args else None
    # urllib3's failed connects (refused, host not found: NewConnectionError) are ConnectTimeoutErrors too.
    return isinstance(getattr(cause, "reason", None), ConnectTimeoutError)
