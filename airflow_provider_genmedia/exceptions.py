"""Errors raised by the genmedia provider. None of them ever carries the API key."""

from __future__ import annotations

from typing import Any


class GenMediaError(Exception):
    """Base class of every error of this provider."""


class GenMediaValidationError(GenMediaError, ValueError):
    """Bad input, found before any request was sent; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class GenMediaConnectionError(GenMediaError):
    """The vendor could not be reached (connect error or timeout), after retries."""

    def __init__(self, message: str, *, connected: bool) -> None:
        #: False when the request surely never reached the vendor (a failed connect).
        self.connected = connected
        super().__init__(message)


class GenMediaAPIError(GenMediaError):
    """The vendor answered with an error: HTTP status, the vendor's own code and its message."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        vendor_code: str | int | None = None,
        api: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.vendor_code = vendor_code
        self.api = api
        self.retry_after = retry_after
        #: The vendor's decoded error body, for adapters that read task verdicts from it.
        self.body = body
        parts = [f"HTTP {status_code}" if status_code is not None else None, api]
        prefix = " ".join(part for part in parts if part)
        code = f" [{vendor_code}]" if vendor_code not in (None, "") else ""
        super().__init__(f"{prefix}{code}: {message}" if prefix else f"{message}{code}")


class GenMediaAuthError(GenMediaAPIError):
    """The key was missing, wrong or not allowed (401/403)."""


class GenMediaNotFoundError(GenMediaAPIError):
    """The vendor does not know the task or route (404)."""


class GenMediaRateLimitError(GenMediaAPIError):
    """The vendor asked us to slow down (429, or a rate-limit code in the body)."""

    retryable = True


class GenMediaServerError(GenMediaAPIError):
    """The vendor failed internally (5xx, or an internal-error code in the body)."""

    retryable = True
