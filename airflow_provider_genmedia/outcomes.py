"""The one place where the provider's errors become Airflow outcomes, for every operator and sensor.

An error decides by its own properties (`airflow_provider_genmedia.exceptions.GenMediaError`): a `permanent` one
(bad input, a spend guard's refusal, a vendor task that failed, media too large) fails the task without retry
(`AirflowFailException`), since a retry would meet it again and may pay again; a submit whose outcome is unknown
fails without retry or retries as the operator's ``on_uncertain_submit`` says; anything else (a transient failure,
or one a fixed connection may cure) keeps Airflow's retries and is raised as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_genmedia.exceptions import GenMediaError, GenMediaUncertainSubmitError

UncertainSubmitPolicy = Literal["fail", "resubmit"]


def uncertain_message(error: GenMediaUncertainSubmitError) -> str:
    """What to tell the user about a submit that may have created a billed job."""
    api, sent_at = error.api, f" sent at {error.sent_at}" if error.sent_at else ""
    return (
        f"A {api} submit to {error.path}{sent_at} may have created a billed job: {error.cause}. Look in the {api} "
        "console for a task created at that time before running this task again; to submit anyway, knowing it may "
        "pay twice, set on_uncertain_submit='resubmit'"
    )


def airflow_outcome(
    error: GenMediaError, context: str | None = None, on_uncertain_submit: UncertainSubmitPolicy = "fail"
) -> AirflowException | None:
    """The Airflow exception ``error`` ends the task with, its message led by ``context`` where given; None keeps
    Airflow's retries with the error as it is."""
    if isinstance(error, GenMediaUncertainSubmitError):
        message = uncertain_message(error)
        if on_uncertain_submit == "fail":
            return AirflowFailException(message)
        return AirflowException(f"{message}. A retry submits again, as on_uncertain_submit='resubmit' asks")
    if error.permanent:
        return AirflowFailException(f"{context}: {error}" if context else str(error))
    return None


@contextmanager
def airflow_outcomes(context: str | None = None, on_uncertain_submit: UncertainSubmitPolicy = "fail") -> Iterator[None]:
    """Raise the provider's errors of the block as `airflow_outcome` maps them.

    :param context: What leads the message of a task failed without retry (e.g. ``"Invalid input, nothing was sent
        to novita"``); None: the error's own message.
    :param on_uncertain_submit: The operator's choice for a submit whose outcome is unknown: ``"fail"`` without
        retry, or ``"resubmit"`` on the next try.
    """
    try:
        yield
    except GenMediaError as error:
        outcome = airflow_outcome(error, context, on_uncertain_submit)
        if outcome is None:
            raise
        raise outcome from error
