"""Polling a vendor task: when to poll next (`PollPlanner`), when a wait ends (`TaskWatch`), and the loop that
runs both (`watch_task`), shared by the trigger in the triggerer and `wait_for_task` on the worker.

A vendor outage (connection errors, 5xx, 429 in a row) is ridden out inside the wait, polling again with a doubling
interval, until it has lasted the connection's ``max_outage_seconds``: only then, or at the deadline, does the wait
end, so that a gateway down for a few minutes does not spend the Airflow retries a user sized for real failures.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import redact

from airflow_provider_genmedia.apis.base import PollSchedule, TaskApi
from airflow_provider_genmedia.events import ERROR, TIMEOUT, TaskEvent
from airflow_provider_genmedia.exceptions import GenMediaAPIError, GenMediaError, GenMediaNotFoundError
from airflow_provider_genmedia.hooks.connection_settings import DEFAULT_MAX_OUTAGE
from airflow_provider_genmedia.hooks.genmedia import TaskClient
from airflow_provider_genmedia.metrics import PollMeter
from airflow_provider_genmedia.results import GenerationResult, TaskProgress, TaskStatus

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

log = logging.getLogger(__name__)

#: Without news from the vendor, each interval is this much longer than the one before.
GROWTH = 1.5
#: Every planned delay is moved by up to this fraction either way, so that many tasks do not poll in step.
JITTER = 0.2
#: During an outage the interval doubles from the usual one after each failed poll, up to this many seconds (or the
#: usual interval, when that is longer).
MAX_OUTAGE_BACKOFF = 30.0
#: Vendors may not know a task yet right after submit: a 404 this soon after the wait began is retried.
NOT_FOUND_GRACE = 60.0
#: The poll made at the deadline may take this long before the wait ends in ``timeout``.
DEADLINE_GRACE = 1.0


class PollPlanner:
    """When to poll a vendor task next: the one place that holds the polling schedule.

    A fixed ``poll_interval`` wins. Otherwise the first poll comes ``schedule.first`` after ``submitted_at`` (a UTC
    epoch; default: now), at once if that time has passed. Later ones wait for the work the vendor has left (its
    eta, or an estimate from the progress rate), at least ``minimum`` and at most ``maximum`` seconds, or 1.5 times
    the previous interval when the vendor tells nothing, but then never longer than the schedule's ``end_interval``
    once its fastest tasks may have ended (`PollSchedule`), so that a finished task is seen soon. Delays are
    jittered by ±20 %, except the poll planned for when the vendor should be done, which the jitter only delays (by
    up to 10 %): polling before it is wasted. A ``Retry-After`` is waited out as asked, and no delay runs past
    ``end_time`` (a UTC epoch, read against the wall clock so that it survives a triggerer restart).
    """

    def __init__(
        self,
        schedule: PollSchedule,
        *,
        poll_interval: float | None = None,
        end_time: float | None = None,
        submitted_at: float | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.schedule = schedule
        self.poll_interval = poll_interval
        self.end_time = end_time
        self._clock = clock
        self._uniform = (rng or random).uniform
        self.started_at = clock()
        self.submitted_at = self.started_at if submitted_at is None else min(submitted_at, self.started_at)
        #: The last planned interval: a wait without news grows from it, the first one from the first poll's delay.
        self._interval = schedule.first
        self._progress_seen: tuple[float, float] | None = None

    def now(self) -> float:
        """The planner's clock: a UTC epoch."""
        return self._clock()

    @property
    def elapsed(self) -> float:
        """Seconds since the planner was made."""
        return self._clock() - self.started_at

    def remaining(self) -> float | None:
        """Seconds left until the deadline (never negative); None without a deadline."""
        return None if self.end_time is None else max(self.end_time - self._clock(), 0.0)

    @property
    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self.end_time is not None and self._clock() >= self.end_time

    def poll_budget(self) -> float | None:
        """How long one poll may take before the deadline cuts it off; None without a deadline."""
        remaining = self.remaining()
        return None if remaining is None else remaining + DEADLINE_GRACE

    def first_delay(self) -> float:
        """The wait before the first poll: the API's typical first wait, counted from the submit."""
        if self.poll_interval:
            return self._jittered(self.poll_interval)
        return max(self._jittered(self.schedule.first) - (self.started_at - self.submitted_at), 0.0)

    def after_result(self, result: TaskProgress | GenerationResult) -> float:
        """The wait after a poll that answered ``result`` (a task still queued or running)."""
        if self.poll_interval:
            return self._jittered(self.poll_interval)
        work_left = self._work_left(result)
        if work_left is None:
            return self._grown()
        self._interval = min(max(work_left, self.schedule.minimum), self.schedule.maximum)
        if work_left > self.schedule.maximum:
            return self._jittered(self._interval)
        return self._capped(self._interval * self._uniform(1, 1 + JITTER / 2))

    def after_error(self, error: Exception, failures: int = 1) -> float:
        """The wait after the ``failures``-th failed poll in a row: the vendor's ``Retry-After`` if it sent one, else
        the usual interval doubled for each failure before this one, up to `MAX_OUTAGE_BACKOFF`."""
        if isinstance(error, GenMediaAPIError) and error.retry_after is not None:
            return self._capped(error.retry_after)
        usual = self.poll_interval or self._interval
        return self._jittered(min(usual * 2 ** max(failures - 1, 0), max(usual, MAX_OUTAGE_BACKOFF)))

    def _work_left(self, result: TaskProgress | GenerationResult) -> float | None:
        """Seconds of work the vendor has left: its eta, or the remaining progress at the rate seen so far."""
        now = self._clock()
        previous = self._progress_seen
        progress = result.progress
        if progress is not None and (previous is None or progress != previous[1]):
            self._progress_seen = (now, progress)
        if result.eta_seconds:
            return result.eta_seconds
        if previous is None or progress is None or not previous[1] < progress < 100 or now <= previous[0]:
            return None
        rate = (progress - previous[1]) / (now - previous[0])
        return (100 - progress) / rate

    def _grown(self) -> float:
        """The next interval without news: 1.5 times the last, at most ``maximum`` and never past the schedule's
        bound near the end (`PollSchedule.end_interval`), which the jitter cannot overshoot."""
        bound = self._end_bound()
        self._interval = min(self._interval * GROWTH, self.schedule.maximum, bound)
        return min(self._jittered(self._interval), self._capped(bound))

    def _end_bound(self) -> float:
        """The longest wait without news from now: until ``end_interval`` after ``earliest_end`` (counted from the
        submit), ``end_interval`` from then on; unbounded without an ``end_interval``."""
        end_interval = self.schedule.end_interval
        if end_interval is None:
            return float("inf")
        until_end = self.submitted_at + self.schedule.earliest_end - self._clock()
        return max(until_end, 0.0) + end_interval

    def _jittered(self, delay: float) -> float:
        return self._capped(delay * self._uniform(1 - JITTER, 1 + JITTER))

    def _capped(self, delay: float) -> float:
        remaining = self.remaining()
        return max(delay if remaining is None else min(delay, remaining), 0.0)


def error_kind(error: Exception) -> str:
    """What kind of failure ``error`` is, in the words of a log line: ``HTTP 502``, ``GenMediaConnectionError``."""
    status = getattr(error, "status_code", None)
    return f"HTTP {status}" if status is not None else type(error).__name__


class TaskWatch:
    """One wait for one task: the planner, the last answer, the current outage; decides when the wait ends.

    :param max_outage: Seconds a run of transient poll failures may last before the wait ends in ``error``.
    """

    def __init__(
        self,
        api: TaskApi,
        task_id: str,
        planner: PollPlanner,
        logger: logging.Logger | Logger,
        max_outage: float = DEFAULT_MAX_OUTAGE,
    ) -> None:
        self.api = api
        self.task_id = task_id
        self.planner = planner
        self.log = logger
        self.max_outage = max_outage
        self.last: TaskProgress | GenerationResult | None = None
        #: Failed polls in a row, since the first of them (``outage_since``, the planner's clock).
        self.failures = 0
        self.outage_since: float | None = None
        self.next_delay = planner.first_delay()
        self._logged: tuple[TaskStatus, int | None] | None = None
        self._logged_error: str | None = None

    def record(self, answer: TaskProgress | GenerationResult) -> TaskEvent | None:
        """Take a poll's answer; return the final event payload, or None to poll again after `next_delay`."""
        if self.failures:
            self.log.info(
                "Polling %s task %s recovered after %.0f s and %d failed poll(s)",
                self.api.name,
                self.task_id,
                self.outage_seconds(),
                self.failures,
            )
        self.failures, self.outage_since, self._logged_error = 0, None, None
        self._log_news(answer)
        self.last = answer
        if isinstance(answer, GenerationResult) and answer.status.is_terminal:
            return TaskEvent.completed(answer)
        if self.planner.expired:
            return self.timeout_event()
        self.next_delay = self.planner.after_result(answer)
        return None

    def _log_news(self, answer: TaskProgress | GenerationResult) -> None:
        """Log a new status, or progress that crossed a quarter; not every poll."""
        quarter = None if answer.progress is None else int(answer.progress // 25)
        if self._logged == (answer.status, quarter):
            return
        self._logged = (answer.status, quarter)
        progress = "" if answer.progress is None else f", {answer.progress:.0f} %"
        eta = "" if answer.eta_seconds is None else f", eta {answer.eta_seconds:.0f} s"
        self.log.info("%s task %s is %s%s%s", self.api.name, self.task_id, answer.status.value, progress, eta)

    def outage_seconds(self) -> float:
        """How long polls have been failing in a row (0 while they are answered)."""
        return 0.0 if self.outage_since is None else self.planner.now() - self.outage_since

    def record_error(self, error: Exception) -> TaskEvent | None:
        """Take a failed poll; return the final event payload, or None to poll again after `next_delay`.

        A transient failure ends the wait only once failures in a row have lasted ``max_outage`` seconds; the next
        poll is planned no later than that moment, so that the wait ends on time. It is logged when its kind
        changes (a first failure, another status), not at every poll."""
        detail = str(redact(str(error)))
        if not self._is_transient(error):
            return self._error_event(f"polling {self.api.name} task {self.task_id} failed: {detail}")
        if self.outage_since is None:
            self.outage_since = self.planner.now()
        self.failures += 1
        outage = self.outage_seconds()
        if outage >= self.max_outage:
            return self._error_event(
                f"polling {self.api.name} task {self.task_id} failed for {outage:.0f} s ({self.failures} polls in a "
                f"row), past the connection's max_outage_seconds ({self.max_outage:g} s); last error: {detail}"
            )
        if self.planner.expired:
            return self.timeout_event()
        self.next_delay = min(self.planner.after_error(error, self.failures), self.max_outage - outage)
        kind = error_kind(error)
        if kind != self._logged_error:
            self._logged_error = kind
            self.log.warning(
                "Polling %s task %s failed (%s); riding it out for up to %.0f s more, polling again with backoff "
                "(next in %.1f s); logged again only when the error changes or polling recovers",
                self.api.name,
                self.task_id,
                detail,
                self.max_outage - outage,
                self.next_delay,
            )
        return None

    def timeout_event(self) -> TaskEvent:
        """The payload of a wait whose deadline passed while the vendor was still working."""
        state = self.last.status.value if self.last else "unanswered"
        deadline = datetime.fromtimestamp(self.planner.end_time or time.time(), UTC).isoformat(timespec="seconds")
        message = (
            f"{self.api.name} task {self.task_id} was still running at the deadline {deadline} (last status: {state})"
        )
        return TaskEvent(
            status=TIMEOUT, api=self.api.name, task_id=self.task_id, message=message, result=self._last_result()
        )

    def _error_event(self, message: str) -> TaskEvent:
        return TaskEvent(
            status=ERROR, api=self.api.name, task_id=self.task_id, message=message, result=self._last_result()
        )

    def _last_result(self) -> GenerationResult | None:
        if self.last is None or isinstance(self.last, GenerationResult):
            return self.last
        status, progress, eta = self.last
        return GenerationResult(
            api=self.api.name, task_id=self.task_id, status=status, progress=progress, eta_seconds=eta
        )

    def _is_transient(self, error: Exception) -> bool:
        if isinstance(error, GenMediaNotFoundError):
            return self.planner.elapsed < NOT_FOUND_GRACE
        return isinstance(error, GenMediaError) and error.transient


async def watch_task(
    client: TaskClient,
    task_id: str,
    planner: PollPlanner,
    logger: logging.Logger | Logger,
) -> TaskEvent:
    """Poll a vendor task once per planned delay until the wait ends; return its one event.

    Each poll is one request (`TaskClient.apoll`), never retried inside: the schedule is the retry layer, and the
    connection's ``max_outage_seconds`` bounds how long it rides out failures in a row.
    """
    api = client.api
    meter = PollMeter(api.name, planner.submitted_at if planner.submitted_at < planner.started_at else None)
    async with client:
        try:
            settings = await client.hook.ashared_settings()
        except Exception as error:
            message = f"cannot poll {api.name} task {task_id}: {redact(str(error))}"
            return TaskEvent(status=ERROR, api=api.name, task_id=task_id, message=message, result=None)
        watch = TaskWatch(api, task_id, planner, logger, max_outage=settings.max_outage_seconds)
        while True:
            await asyncio.sleep(watch.next_delay)
            event: TaskEvent | None
            try:
                async with asyncio.timeout(planner.poll_budget()):
                    answer = await client.apoll(task_id)
            except TimeoutError:
                meter.failed(None)
                event = watch.timeout_event()
            except Exception as error:
                meter.failed(error)
                event = watch.record_error(error)
            else:
                meter.answered(answer)
                event = watch.record(answer)
            if event is not None:
                return event


def wait_for_task(
    client: TaskClient,
    task_id: str,
    *,
    poll_interval: float | None = None,
    end_time: float | None = None,
) -> GenerationResult:
    """Wait on the worker with the trigger's own `watch_task`; return the succeeded result or raise as
    `TaskEvent.outcome` does. It runs on the hook's own event loop (`GenMediaHook.run_sync`)."""
    planner = PollPlanner(client.api.poll_schedule, poll_interval=poll_interval, end_time=end_time)
    return client.run_sync(watch_task(client, task_id, planner, log)).outcome()
