"""Metrics of the pipeline through Airflow's ``Stats`` (StatsD or OpenTelemetry, as ``[metrics]`` says).

Every name starts with ``genmedia.`` and every metric carries two tags only, ``api`` and ``outcome``, both from small
fixed sets (never a task id, a URL or a prompt), so that a metrics backend keeps a handful of series per name. Each is
emitted where the work happens: submits, NSFW verdicts, reviews and publishing on workers; polls, the vendor task's
duration and the detection lag wherever the wait runs (the triggerer for a deferred task, else the worker).
A metric never fails a task: an error of the metrics backend is logged and dropped. See docs/observability.md.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Final

from airflow_provider_genmedia.exceptions import GenMediaAPIError, GenMediaRateLimitError
from airflow_provider_genmedia.results import GenerationResult, MediaOutput, TaskProgress, TaskStatus

log = logging.getLogger(__name__)

PREFIX: Final = "genmedia"
#: Counter, per submit of a submit operator's try: ``outcome`` is one of `SUBMIT_OUTCOMES`.
SUBMITS: Final = f"{PREFIX}.submits"
#: Counter, per poll of a vendor task: ``outcome`` is one of `POLL_OUTCOMES`.
POLLS: Final = f"{PREFIX}.polls"
#: Timer, from the submit to the poll that saw the vendor task end; ``outcome`` is its terminal status.
TASK_DURATION: Final = f"{PREFIX}.task_duration"
#: Timer, from the last poll that saw the task running (or, when none did, the start of the wait) to the poll that saw
#: it end: how late at most the end was seen.
DETECTION_LAG: Final = f"{PREFIX}.detection_lag"
#: Counter per output the NSFW filter judged, one name per verdict source (`NSFW_SOURCES`).
NSFW: Final = f"{PREFIX}.nsfw"
#: Counter per human review decision: ``outcome`` approved or rejected.
REVIEWS: Final = f"{PREFIX}.reviews"
#: Counters of published files and of their bytes: ``outcome`` written or unchanged (an idempotent re-run).
PUBLISHED_FILES: Final = f"{PREFIX}.published_files"
PUBLISHED_BYTES: Final = f"{PREFIX}.published_bytes"
#: Counter of estimated spend in millionths of the currency, one name per currency (``genmedia.estimated_cost.usd``).
ESTIMATED_COST: Final = f"{PREFIX}.estimated_cost"
#: Estimated cost is counted in millionths of its currency (StatsD counters are integers).
COST_UNIT: Final = 1_000_000

CREATED, RESUMED, UNCERTAIN, BUDGET_EXCEEDED, REFUSED, ERROR = (
    "created",
    "resumed",
    "uncertain",
    "budget_exceeded",
    "refused",
    "error",
)
SUBMIT_OUTCOMES: Final = (CREATED, RESUMED, UNCERTAIN, BUDGET_EXCEEDED, REFUSED, ERROR)
RUNNING, ENDED, RATE_LIMITED, TIMEOUT = "running", "ended", "rate_limited", "timeout"
POLL_OUTCOMES: Final = (RUNNING, ENDED, RATE_LIMITED, ERROR, TIMEOUT)
NSFW_SOURCES: Final = ("vendor", "local", "scorer", "none")
NSFW_OUTCOMES: Final = ("kept", "flagged", "unchecked", "undecodable")
_NAME_PART = re.compile(r"[^a-z0-9_]")


def tags(api: str, outcome: str) -> dict[str, str]:
    """The two tags every genmedia metric carries."""
    return {"api": api, "outcome": outcome}


def _stats() -> Any:
    """Airflow's ``Stats`` of the running version (common-compat finds it on 3.0 to 3.3)."""
    from airflow.providers.common.compat.sdk import Stats

    return Stats


def incr(name: str, api: str, outcome: str, count: int = 1) -> None:
    """Add ``count`` to the counter ``name``; never raises."""
    try:
        _stats().incr(name, count, tags=tags(api, outcome))
    except Exception as error:  # a metric must never fail the work it measures
        log.debug("Metric %s not sent: %s", name, error)


def timing(name: str, api: str, outcome: str, seconds: float) -> None:
    """Send a duration to the timer ``name``; never raises."""
    try:
        _stats().timing(name, timedelta(seconds=max(seconds, 0.0)), tags=tags(api, outcome))
    except Exception as error:  # a metric must never fail the work it measures
        log.debug("Metric %s not sent: %s", name, error)


def count_submit(api: str, outcome: str) -> None:
    """One submit of a try: a job ``created``, ``resumed``, an ``uncertain`` submit, a ``budget_exceeded`` or
    ``refused`` one (nothing was made), or an ``error`` after which a job may exist."""
    incr(SUBMITS, api, outcome)


def submit_outcome(error: BaseException) -> str:
    """The ``outcome`` of a submit that raised ``error``: ``uncertain`` (no answer proved whether a job was made),
    ``budget_exceeded`` (refused before anything was sent), ``error`` (a job may exist), else ``refused``."""
    from airflow_provider_genmedia.exceptions import (
        GenMediaBudgetExceededError,
        GenMediaUncertainSubmitError,
        job_may_exist,
    )

    if isinstance(error, GenMediaUncertainSubmitError):
        return UNCERTAIN
    if isinstance(error, GenMediaBudgetExceededError):
        return BUDGET_EXCEEDED
    return ERROR if job_may_exist(error) else REFUSED


class PollMeter:
    """The metrics of one wait for one vendor task: each poll's outcome, and once the task ended, its duration
    (when the submit time is known) and the detection lag (since the last poll that saw it running, or the start of
    the wait)."""

    def __init__(self, api: str, submitted_at: float | None, clock: Any = time.time) -> None:
        self.api = api
        self.submitted_at = submitted_at
        self._clock = clock
        self._last_running = clock()

    def answered(self, answer: TaskProgress | GenerationResult) -> None:
        """Count a poll that answered; time the task when the answer says it ended."""
        now = self._clock()
        status = answer.status
        if not status.is_terminal:
            self._last_running = now
            incr(POLLS, self.api, RUNNING)
            return
        incr(POLLS, self.api, ENDED)
        self.ended(status, now)

    def ended(self, status: TaskStatus, now: float) -> None:
        """Time a vendor task seen ended at ``now``."""
        if self.submitted_at is not None:
            timing(TASK_DURATION, self.api, status.value, now - self.submitted_at)
        timing(DETECTION_LAG, self.api, status.value, now - self._last_running)

    def failed(self, error: BaseException | None) -> None:
        """Count a poll that failed: rate limited (429, or the vendor's own code for it), an error, or cut off by the
        deadline (``error`` None)."""
        if error is None:
            outcome = TIMEOUT
        elif isinstance(error, GenMediaRateLimitError) or (
            isinstance(error, GenMediaAPIError) and error.status_code == 429
        ):
            outcome = RATE_LIMITED
        else:
            outcome = ERROR
        incr(POLLS, self.api, outcome)


def count_verdicts(result: GenerationResult, filtered: GenerationResult) -> None:
    """Count each output the NSFW filter judged in this run, by the source of its verdict: kept ones, then those
    set aside (flagged, unchecked or undecodable)."""
    new_rejections = filtered.rejected[len(result.rejected) :]
    for output in filtered.outputs:
        incr(f"{NSFW}.{verdict_source(output)}", filtered.api, "kept")
    for item in new_rejections:
        incr(f"{NSFW}.{verdict_source(item.output)}", filtered.api, item.cause)


def verdict_source(output: MediaOutput) -> str:
    """Who judged ``output``: vendor, local, scorer, or none when no check ran."""
    return output.nsfw.source if output.nsfw is not None and output.nsfw.checked else "none"


def count_review(api: str, approved: bool) -> None:
    """One human review decision."""
    incr(REVIEWS, api, "approved" if approved else "rejected")


def count_published(api: str, files: Iterable[dict[str, Any]]) -> None:
    """The files a publish wrote or found unchanged, and their bytes."""
    for file in files:
        outcome = "written" if file.get("written") else "unchanged"
        incr(PUBLISHED_FILES, api, outcome)
        incr(PUBLISHED_BYTES, api, outcome, int(file.get("bytes") or 0))


def cost_metric_name(currency: str) -> str:
    """The counter of a currency's estimated spend: ``genmedia.estimated_cost.<currency>``, lower case."""
    return f"{ESTIMATED_COST}.{_NAME_PART.sub('_', currency.lower()) or 'unknown'}"


def count_cost(result: GenerationResult) -> None:
    """Add a finished job's estimated cost, where its usage has one, in millionths of its currency."""
    usage = result.usage
    if usage is None or usage.estimated_cost is None:
        return
    incr(
        cost_metric_name(usage.currency or "unknown"),
        result.api,
        result.status.value,
        round(usage.estimated_cost * COST_UNIT),
    )
