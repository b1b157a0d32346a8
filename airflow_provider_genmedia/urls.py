"""http(s) links: which values are links a vendor or a download can fetch, and how to show one without its secrets.

Signed links carry their credentials in the query string, so every URL shown in a message, a log line or a manifest
goes through `public_url` first.
"""

from __future__ import annotations

from typing import Any, TypeGuard
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_genmedia.exceptions import GenMediaValidationError


def is_http_url(value: Any) -> TypeGuard[str]:
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


def public_url(url: str) -> str:
    """``url`` without query string, fragment and credentials (signatures live there): safe to log and store."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
