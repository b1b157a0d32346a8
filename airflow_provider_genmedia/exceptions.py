"""Errors raised by the genmedia provider. None of them ever carries the API key."""

from __future__ import annotations

from typing import Any

#: Statuses of a gateway in front of the vendor that cannot tell whether the vendor received the request.
GATEWAY_STATUSES = frozenset({502, 504})
#: Statuses at which a submit surely created no job.
REFUSED_STATUSES = frozenset({429, 503})
#: Vendor codes that mean "no error" (Novita's, gpt.ge's and the avatar API's envelopes): no proof of a refusal.
NO_ERROR_CODES = frozenset({None, "", 0, "0"})


class GenMediaError(Exception):
    """Base class of every error of this provider.

    Four properties carry the one rule every caller follows: `transient` (the same request may succeed later:
    retry it, or poll again), `resendable` (a submit that failed so surely created no job: it may be sent again),
    `outcome_unknown` (the request may have taken effect although no answer proves it) and `permanent` (a retry of
    the Airflow task would meet the same error: `airflow_provider_genmedia.outcomes` fails it without retry).
    """

    @property
    def transient(self) -> bool:
        """True when the same request may succeed later."""
        return False

    @property
    def resendable(self) -> bool:
        """True when a submit that failed so surely created no job, so that sending it again cannot pay twice."""
        return False

    @property
    def outcome_unknown(self) -> bool:
        """True when the request may have reached the vendor and taken effect although no answer proves it."""
        return False

    @property
    def permanent(self) -> bool:
        """True when a retry of the Airflow task would meet the same error, so that retrying only costs time."""
        return False


class GenMediaValidationError(GenMediaError, ValueError):
    """Bad input, found before any request was sent; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")

    @property
    def permanent(self) -> bool:
        """The same input fails the same way."""
        return True


class GenMediaConnectionError(GenMediaError):
    """The vendor could not be reached (connect error or timeout), after retries."""

    def __init__(self, message: str, *, connected: bool) -> None:
        #: False when the request surely never reached the vendor (a failed connect).
        self.connected = connected
        super().__init__(message)

    @property
    def transient(self) -> bool:
        """A network failure may pass."""
        return True

    @property
    def resendable(self) -> bool:
        """Only a request that never reached the vendor (a failed connect) may be sent again."""
        return not self.connected

    @property
    def outcome_unknown(self) -> bool:
        """A request sent and then left unanswered (read timeout, connection reset) may have taken effect."""
        return self.connected


class GenMediaAPIError(GenMediaError):
    """The vendor answered with an error: HTTP status, the vendor's own code and its message."""

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

    @property
    def transient(self) -> bool:
        """A request timeout (408) may pass; other statuses say so in their own class."""
        return self.status_code == 408

    @property
    def resendable(self) -> bool:
        """Refused at the door (429, 503): the vendor created nothing."""
        return self.status_code in REFUSED_STATUSES

    @property
    def outcome_unknown(self) -> bool:
        """Only the vendor's own error code proves a refusal: a gateway's 502/504, or an answer the vendor gave as a
        success (2xx, or read from such a body) that holds no task, cannot say whether the vendor acted."""
        if self.vendor_code not in NO_ERROR_CODES:
            return False
        status = self.status_code
        return status is None or 200 <= status < 300 or status in GATEWAY_STATUSES


class GenMediaUncertainSubmitError(GenMediaError):
    """A submit was sent, but no answer proved whether the vendor created (and bills) a job.

    ``sent_at`` (UTC, as the pay-once record holds it) is set once the attempt is known to have been recorded: what to
    look for in the vendor's console.
    """

    def __init__(self, api: str, path: str, cause: str, *, sent_at: str | None = None) -> None:
        self.api = api
        self.path = path
        self.cause = cause
        self.sent_at = sent_at
        super().__init__(f"the {api} submit to {path} may have created a job: {cause}")

    @property
    def outcome_unknown(self) -> bool:
        """By definition."""
        return True


class GenMediaSpendRefusedError(GenMediaError):
    """A spend guard of the connection refused a submit before anything was sent; the message names the setting
    that decides it. A submit operator fails its task without retry on it (a retry would meet the same guard)."""

    @property
    def resendable(self) -> bool:
        """Nothing was sent, so no job exists."""
        return True

    @property
    def permanent(self) -> bool:
        """A retry would meet the same guard."""
        return True


class GenMediaBalanceError(GenMediaSpendRefusedError):
    """The vendor's balance is below the connection's ``min_balance``."""


class GenMediaBudgetExceededError(GenMediaSpendRefusedError):
    """A submit would exceed a daily budget of its connection (``max_jobs_per_day``, ``max_outputs_per_day``)."""


class GenMediaAuthError(GenMediaAPIError):
    """The key was missing, wrong or not allowed (401/403)."""


class GenMediaNotFoundError(GenMediaAPIError):
    """The vendor does not know the task or route (404)."""


class GenMediaRateLimitError(GenMediaAPIError):
    """The vendor asked us to slow down (429, or a rate-limit code in the body)."""

    @property
    def transient(self) -> bool:
        """Slowing down helps."""
        return True

    @property
    def resendable(self) -> bool:
        """A rate-limited request was refused, whatever its status."""
        return True


class GenMediaServerError(GenMediaAPIError):
    """The vendor failed internally (5xx, or an internal-error code in the body)."""

    @property
    def transient(self) -> bool:
        """The vendor may recover."""
        return True


class LinkExpiredError(GenMediaAPIError):
    """A presigned link answered 403/410 (it expired or its signature no longer holds), or could not be signed anew."""

    @property
    def transient(self) -> bool:
        """Asking again gets the same answer: only a freshly signed link helps."""
        return False


class MediaTooLargeError(GenMediaError):
    """A file is larger than the size limit: refused before or while streaming, never stored."""

    @property
    def permanent(self) -> bool:
        """The file stays as large."""
        return True


class LinkRefusedError(GenMediaError):
    """A link was not fetched: it resolves to a non-public address outside the allowed origins, or redirects too often
    (`airflow_provider_genmedia.safe_fetch`). Nothing was sent to it."""

    @property
    def permanent(self) -> bool:
        """The link resolves the same way on a retry; only the setting can change the answer."""
        return True


class ResponseTooLargeError(GenMediaError):
    """A vendor answer was larger than the provider reads (`airflow_provider_genmedia.hooks.json_or_error`)."""

    @property
    def permanent(self) -> bool:
        """An answer that large is no answer of the documented API; asking again gets the same."""
        return True


class GenMediaTaskFailedError(GenMediaError):
    """The vendor task ended failed, canceled or expired; the message gives the vendor's reason."""

    @property
    def permanent(self) -> bool:
        """The vendor's verdict stands: a retry would resume the same ended task or pay for a new one."""
        return True


class GenMediaStorageError(GenMediaError):
    """The object store does not hold what was written to it (an upload that did not verify)."""


class GenMediaUnsupportedError(GenMediaError):
    """A feature needs a newer Airflow than the one running; the message names the version needed."""

    @property
    def permanent(self) -> bool:
        """The running Airflow stays what it is."""
        return True


class UncheckedOutputError(GenMediaError):
    """An output had no NSFW verdict and the policy is unchecked='fail'."""

    @property
    def permanent(self) -> bool:
        """The policy judges the same output the same way."""
        return True


class UndecodableMediaError(GenMediaError):
    """An output is not the media it claims to be (an error page, a truncated video): it cannot be judged, so the NSFW
    filter rejects it with this reason."""


def job_may_exist(error: BaseException) -> bool:
    """The one rule for whether a submit that raised ``error`` may have made a job: the error's `outcome_unknown`.
    Anything that is not a provider error (a bug, a cancellation, an interrupt) proves nothing, so a job may exist."""
    return not isinstance(error, GenMediaError) or error.outcome_unknown


def api_error_class(status: int) -> type[GenMediaAPIError]:
    """The error class of an HTTP error status, the same for a vendor's answer and a download."""
    if status in (401, 403):
        return GenMediaAuthError
    if status == 404:
        return GenMediaNotFoundError
    if status == 429:
        return GenMediaRateLimitError
    if status >= 500:
        return GenMediaServerError
    return GenMediaAPIError
