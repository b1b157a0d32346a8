"""What one HTTP exchange with a vendor means: the JSON body of an answer, or the typed error of the provider.

Every message goes through a scrubber that replaces the API key, so that no error text ever carries it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from airflow_provider_genmedia.apis.base import TaskApi
from airflow_provider_genmedia.exceptions import (
    GenMediaAPIError,
    GenMediaConnectionError,
    ResponseTooLargeError,
    api_error_class,
)
from airflow_provider_genmedia.hooks.sessions import CONNECT_TIMEOUT
from airflow_provider_genmedia.retries import parse_retry_after

Scrub = Callable[[str], str]
#: The largest vendor answer read (16 MiB): the documented answers are a few KB, so anything larger is refused unread.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
_READ_CHUNK = 64 * 1024


async def read_body(response: aiohttp.ClientResponse, what: str, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """The body of a vendor answer, read a chunk at a time; a `ResponseTooLargeError` naming ``what`` (the method
    and path) as soon as it announces or reaches more than ``limit`` bytes."""
    refusal = f"{what}: the answer is over {limit} bytes, more than any answer of the API; it was not read"
    if response.content_length is not None and response.content_length > limit:
        raise ResponseTooLargeError(refusal)
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise ResponseTooLargeError(refusal)
        chunks.append(chunk)
    return b"".join(chunks)


def read_answer(api: TaskApi, status: int, headers: Mapping[str, str], content: bytes, scrub: Scrub) -> Any:
    """The JSON body of a 2xx answer; otherwise the typed error for the status and the vendor's error body. The key
    is scrubbed from the body before anything reads it, so that no result, XCom or message built from it holds it."""
    try:
        body = scrubbed(json.loads(content), scrub) if content else None
    except (ValueError, RecursionError):  # not JSON, an integer past Python's digit limit, nesting past its depth
        body = None
    if 200 <= status < 300:
        if body is None:
            raise GenMediaAPIError("the answer is not JSON", status_code=status, api=api.name)
        return body
    code, message = api.parse_error(body)
    snippet = _page_text(content, scrub) if body is None else ""
    raise api_error_class(status)(
        scrub(str(message or snippet or f"HTTP {status}")),
        status_code=status,
        vendor_code=code if isinstance(code, int | str | None) else scrub(str(code)),
        api=api.name,
        retry_after=parse_retry_after(headers),
        body=body,
    )


def scrubbed(value: Any, scrub: Scrub) -> Any:
    """A decoded JSON value with `scrub` applied to every string in it, keys included."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [scrubbed(item, scrub) for item in value]
    if isinstance(value, dict):
        return {scrub(key): scrubbed(item, scrub) for key, item in value.items()}
    return value


def _page_text(content: bytes, scrub: Scrub) -> str:
    """A non-JSON error body in a few words: an HTML page's title (a gateway's ``502 Bad Gateway``), else its start;
    scrubbed before it is cut, so that no piece of the key is left at a cut."""
    text = scrub(content[:2000].decode(errors="replace"))
    title = _TITLE.search(text)
    return " ".join((title.group(1) if title else text[:300]).split())


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def never_sent(error: BaseException) -> bool:
    """True when the error happened before a connection was made, so that the vendor saw nothing."""
    return isinstance(error, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def transport_error(error: BaseException, method: str, path: str, scrub: Scrub) -> GenMediaConnectionError:
    """The provider's error for a request that got no HTTP answer (refused, reset, timed out)."""
    kind = "timed out" if isinstance(error, TimeoutError) else "failed"
    detail = scrub(f"{type(error).__name__}: {error}")
    return GenMediaConnectionError(f"{method} {path.split('?')[0]} {kind} ({detail})", connected=not never_sent(error))


def answer_text(error: GenMediaAPIError) -> str:
    """``HTTP 401 [INVALID_API_KEY]: message``: the vendor's answer without naming one API of the service."""
    code = f" [{error.vendor_code}]" if error.vendor_code not in (None, "") else ""
    return f"HTTP {error.status_code}{code}: {error.message}"


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and all it wraps: aiohttp's ``os_error`` and ``certificate_error``, causes and contexts."""
    found: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        wrapped = [getattr(current, name, None) for name in ("os_error", "certificate_error")]
        nested = [*wrapped, current.__cause__, current.__context__]
        pending += [item for item in nested if isinstance(item, BaseException)]
    return found


def network_failure(error: BaseException, read_timeout: float) -> str:
    """What went wrong on the network, in a few words: ``connection refused``, ``host name not found``,
    ``no answer within 60 s``, ``TLS failed: ...``; the operating system's words otherwise."""
    causes = _causes(error)
    if any(isinstance(cause, socket.gaierror | aiohttp.ClientConnectorDNSError) for cause in causes):
        return "host name not found"
    tls = [cause for cause in causes if isinstance(cause, ssl.SSLError)]
    if tls:
        reasons = [reason for cause in tls if (reason := getattr(cause, "reason", None))]
        return f"TLS failed: {reasons[0] if reasons else tls[-1]}"
    if any(isinstance(cause, aiohttp.ConnectionTimeoutError) for cause in causes):
        return f"no connection within {CONNECT_TIMEOUT:g} s"
    if any(isinstance(cause, TimeoutError) for cause in causes):
        return f"no answer within {read_timeout:g} s"
    for cause in reversed(causes):
        if isinstance(cause, OSError) and (cause.errno or cause.strerror):
            text = os.strerror(cause.errno) if isinstance(cause.errno, int) else str(cause.strerror)
            return text[0].lower() + text[1:]
    return type(causes[-1]).__name__
