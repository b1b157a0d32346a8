"""The one retry policy of the provider's HTTP calls: which errors are retried, how long to wait, when to stop.

Whether an error may be retried is the error's own `GenMediaError.transient` (reads) or
`GenMediaError.resendable` (submits); this module only decides the waits: exponential backoff with jitter, a
``Retry-After`` honoured up to `MAX_RETRY_AFTER`, and a stop after ``max_retries`` retries or at a deadline.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from tenacity import (
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from airflow_provider_genmedia.exceptions import GenMediaError

INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
#: Up to this many seconds are added at random to each backoff, so that clients do not retry in step.
RETRY_JITTER = 0.5
#: The wait before a retry when the error names none: 0.5, 1, 2, 4, 8, 8, ... seconds, each plus its jitter.
BACKOFF = wait_exponential(multiplier=INITIAL_RETRY_DELAY, max=MAX_RETRY_DELAY) + wait_random(0, RETRY_JITTER)
#: A ``Retry-After`` longer than this is not waited out inside one call; the error is raised instead.
MAX_RETRY_AFTER = 120.0
#: The one injection point of the waits' clock, for tests: while True, every policy that `retry_policy` builds
#: computes and logs its waits as usual but spends none of them (a test that does not measure the waits sets it, e.g.
#: with ``monkeypatch.setattr(retries, "SKIP_WAITS", True)``). Never set in production.
SKIP_WAITS = False


class _NoWait:
    """What a skipped wait returns: nothing to wait for, whether awaited (``AsyncRetrying``) or not (``Retrying``)."""

    def __await__(self) -> Any:
        return iter(())


def _skip_wait(seconds: float) -> _NoWait:
    return _NoWait()


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date); None if absent."""
    lowered = {key.lower(): value for key, value in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(float(lowered["retry-after-ms"]) / 1000, 0.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _retry_wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        return min(float(retry_after), MAX_RETRY_AFTER)
    return BACKOFF(state)


def _waits_too_long(error: BaseException) -> bool:
    retry_after = getattr(error, "retry_after", None)
    return retry_after is not None and retry_after > MAX_RETRY_AFTER


def retryable_read(error: BaseException) -> bool:
    """A read (a GET, a download) is retried when its error is transient and asks no overlong wait."""
    return isinstance(error, GenMediaError) and error.transient and not _waits_too_long(error)


def retryable_submit(error: BaseException) -> bool:
    """A submit is resent only when its error proves that no job was created."""
    return isinstance(error, GenMediaError) and error.resendable and not _waits_too_long(error)


def retry_policy(
    max_retries: int,
    retryable: Callable[[BaseException], bool],
    logger: logging.Logger,
    *,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Keyword arguments of tenacity's ``Retrying``/``AsyncRetrying``: at most ``max_retries`` retries of the errors
    ``retryable`` accepts, none that would wait past ``deadline`` (a UTC epoch); the last error is raised."""
    stop: stop_base = stop_after_attempt(max_retries + 1)
    if deadline is not None:
        stop |= stop_before_delay(max(deadline - time.time(), 0.0))

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.warning("%s; retrying in %.1f s (attempt %d)", error, delay, state.attempt_number + 1)

    policy: dict[str, Any] = {
        "stop": stop,
        "wait": _retry_wait,
        "retry": retry_if_exception(retryable),
        "before_sleep": log_retry,
        "reraise": True,
    }
    if SKIP_WAITS:
        policy["sleep"] = _skip_wait
    return policy
