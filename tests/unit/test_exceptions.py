"""The one rule every caller follows: whether an error may pass, and whether a submit may be sent again."""

from __future__ import annotations

import pytest

from airflow_provider_genmedia.exceptions import (
    GenMediaAPIError,
    GenMediaAuthError,
    GenMediaBudgetExceededError,
    GenMediaConnectionError,
    GenMediaError,
    GenMediaNotFoundError,
    GenMediaRateLimitError,
    GenMediaServerError,
    GenMediaStorageError,
    GenMediaUncertainSubmitError,
    GenMediaValidationError,
    LinkExpiredError,
    MediaTooLargeError,
    api_error_class,
)


@pytest.mark.parametrize(
    ("error", "transient", "resendable", "outcome_unknown"),
    [
        (GenMediaConnectionError("connect failed", connected=False), True, True, False),
        (GenMediaConnectionError("read timed out", connected=True), True, False, True),
        (GenMediaRateLimitError("slow down", status_code=429), True, True, False),
        (GenMediaRateLimitError("slow down", vendor_code=50429), True, True, False),
        (GenMediaServerError("unavailable", status_code=503), True, True, False),
        (GenMediaServerError("boom", status_code=500, vendor_code="INTERNAL"), True, False, False),
        (GenMediaServerError("bad gateway", status_code=502), True, False, True),
        (GenMediaAPIError("request timeout", status_code=408), True, False, False),
        (GenMediaAPIError("bad request", status_code=400), False, False, False),
        (GenMediaAPIError("no task in the answer", vendor_code=0, api="jimeng"), False, False, True),
        (GenMediaAPIError("the answer is not JSON", status_code=200), False, False, True),
        (GenMediaAPIError("Arrearage: account in arrears", vendor_code="Arrearage"), False, False, False),
        (GenMediaUncertainSubmitError("novita", "/v3/async/img2img", "no answer"), False, False, True),
        (GenMediaBudgetExceededError("over budget"), False, True, False),
        (GenMediaAuthError("bad key", status_code=401), False, False, False),
        (GenMediaNotFoundError("no such task", status_code=404), False, False, False),
        (GenMediaValidationError("prompt", "is empty"), False, False, False),
        (LinkExpiredError("the link expired", status_code=403), False, False, False),
        (LinkExpiredError("the link expired", status_code=410), False, False, False),
        (MediaTooLargeError("over max_bytes"), False, False, False),
        (GenMediaStorageError("size check of an upload"), False, False, False),
    ],
)
def test_each_error_says_whether_it_may_pass_and_whether_a_submit_may_be_resent(
    error: GenMediaError, transient: bool, resendable: bool, outcome_unknown: bool
) -> None:
    assert (error.transient, error.resendable, error.outcome_unknown) == (transient, resendable, outcome_unknown)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, GenMediaAPIError),
        (401, GenMediaAuthError),
        (403, GenMediaAuthError),
        (404, GenMediaNotFoundError),
        (408, GenMediaAPIError),
        (429, GenMediaRateLimitError),
        (500, GenMediaServerError),
        (503, GenMediaServerError),
    ],
)
def test_each_http_error_status_has_one_error_class(status: int, error: type[GenMediaAPIError]) -> None:
    assert api_error_class(status) is error
