"""The one retry policy: how long it waits between tries, and which errors it does not retry at all."""

from __future__ import annotations

import logging

import pytest
from tenacity import Retrying

from airflow_provider_genmedia.exceptions import (
    GenMediaAPIError,
    GenMediaError,
    GenMediaRateLimitError,
    GenMediaServerError,
    LinkExpiredError,
    MediaTooLargeError,
)
from airflow_provider_genmedia.retries import MAX_RETRY_AFTER, RETRY_JITTER, retry_policy, retryable_read


def waits_before_giving_up(error: GenMediaError, max_retries: int) -> list[float]:
    """The waits of a read that fails with ``error`` on every try (recorded, not slept)."""
    waited: list[float] = []

    def read() -> None:
        raise error

    policy = retry_policy(max_retries, retryable_read, logging.getLogger(__name__))
    with pytest.raises(type(error)):
        Retrying(**{**policy, "sleep": waited.append})(read)
    return waited


def test_the_backoff_doubles_from_half_a_second_to_eight_seconds_with_jitter() -> None:
    waits = waits_before_giving_up(GenMediaServerError("unavailable", status_code=503), 6)
    for wait, base in zip(waits, [0.5, 1, 2, 4, 8, 8], strict=True):
        assert base <= wait <= base + RETRY_JITTER


def test_retry_after_is_waited_instead_unless_it_asks_too_long() -> None:
    assert waits_before_giving_up(GenMediaRateLimitError("slow down", status_code=429, retry_after=3), 2) == [3, 3]
    too_long = GenMediaRateLimitError("slow down", status_code=429, retry_after=MAX_RETRY_AFTER + 1)
    assert waits_before_giving_up(too_long, 2) == []


@pytest.mark.parametrize(
    "error",
    [
        GenMediaAPIError("bad request", status_code=400),
        LinkExpiredError("the link expired", status_code=403),
        MediaTooLargeError("over max_bytes"),
    ],
)
def test_a_lasting_error_is_not_retried(error: GenMediaError) -> None:
    assert waits_before_giving_up(error, 3) == []
