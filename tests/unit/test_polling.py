"""The poll planner's maths, and the worker-side wait against a real local HTTP server."""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.apis.base import PollSchedule
from airflow_provider_genmedia.exceptions import (
    GenMediaAuthError,
    GenMediaConnectionError,
    GenMediaRateLimitError,
    GenMediaServerError,
    GenMediaTaskFailedError,
)
from airflow_provider_genmedia.hooks.genmedia import client_for
from airflow_provider_genmedia.polling import MAX_OUTAGE_BACKOFF, PollPlanner, TaskWatch, wait_for_task
from airflow_provider_genmedia.results import GenerationResult, TaskStatus
from tests.unit.triggers.vendor import (
    Answer,
    novita_route,
    novita_task,
)

FAST = 0.05


# -- the worker-side poller ---------------------------------------------------------------------------------


def test_wait_for_task_follows_the_same_contract(novita: HTTPServer) -> None:
    novita_route(
        novita,
        "t-sync",
        Answer(novita_task("t-sync", "TASK_STATUS_PROCESSING", progress=50)),
        Answer(novita_task("t-sync", "TASK_STATUS_SUCCEED", images=1)),
    )
    novita_route(novita, "t-sync-bad", Answer(novita_task("t-sync-bad", "TASK_STATUS_FAILED", reason="bad model")))
    novita_route(novita, "t-sync-slow", Answer(novita_task("t-sync-slow", "TASK_STATUS_QUEUED")))
    client = client_for(get_api("novita"))
    result = wait_for_task(client, "t-sync", poll_interval=FAST)
    with pytest.raises(GenMediaTaskFailedError, match="t-sync-bad failed: bad model"):
        wait_for_task(client, "t-sync-bad", poll_interval=FAST)
    with pytest.raises(AirflowException, match="t-sync-slow was still running at the deadline"):
        wait_for_task(client, "t-sync-slow", poll_interval=FAST, end_time=time.time() + 0.3)

    assert result.status is TaskStatus.SUCCEEDED
    assert len(result.outputs) == 1


def test_wait_for_task_does_not_wait_out_a_retry_after_past_its_deadline(novita: HTTPServer) -> None:
    limited = Answer({"reason": "RATE_LIMIT_EXCEEDED"}, status=429, headers={"Retry-After": "100"})
    novita_route(novita, "t-limited", limited)
    client = client_for(get_api("novita"))
    started = time.monotonic()
    with pytest.raises(AirflowException, match="t-limited was still running at the deadline"):
        wait_for_task(client, "t-limited", poll_interval=FAST, end_time=time.time() + 0.2)
    assert time.monotonic() - started < 5


# -- the planner maths --------------------------------------------------------------------------------------

SCHEDULE = PollSchedule(first=2.0, minimum=1.0, maximum=10.0)


class MidRandom(random.Random):
    """Jitter pinned to its middle, so delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def planner(**kwargs: object) -> PollPlanner:
    kwargs.setdefault("rng", MidRandom())
    return PollPlanner(SCHEDULE, **kwargs)  # type: ignore[arg-type]


def running(**fields: Any) -> GenerationResult:
    return GenerationResult(api="novita", task_id="t", status=TaskStatus.RUNNING, **fields)


def test_first_poll_follows_the_schedule_or_the_fixed_interval() -> None:
    assert planner().first_delay() == 2.0
    assert planner(poll_interval=0.5).first_delay() == 0.5


def test_the_first_poll_counts_from_the_submit() -> None:
    clock = FakeClock()

    assert planner(clock=clock, submitted_at=clock.now - 1.5).first_delay() == pytest.approx(0.5)
    assert planner(clock=clock, submitted_at=clock.now - 30).first_delay() == 0.0
    assert planner(clock=clock, submitted_at=clock.now + 5).first_delay() == 2.0  # a clock ahead counts as now


def test_eta_plans_the_poll_for_when_the_vendor_should_be_done_within_the_bounds() -> None:
    plan = planner()

    assert plan.after_result(running(eta_seconds=8)) == pytest.approx(8 * 1.05)  # the jitter only delays it
    assert plan.after_result(running(eta_seconds=600)) == SCHEDULE.maximum
    assert plan.after_result(running(eta_seconds=0.5)) == pytest.approx(SCHEDULE.minimum * 1.05)


def test_the_poll_due_at_the_end_is_never_early() -> None:
    plan = PollPlanner(SCHEDULE, rng=random.Random(4))

    delays = [plan.after_result(running(eta_seconds=6)) for _ in range(200)]

    assert all(6.0 <= delay <= 6.6 for delay in delays)


def test_progress_rate_estimates_the_remaining_time() -> None:
    clock = FakeClock()
    plan = planner(clock=clock)

    plan.after_result(running(progress=10))
    clock.now += 2
    # 20 points in 2 s: 70 points left take 7 s, so poll again then.
    assert plan.after_result(running(progress=30)) == pytest.approx(7 * 1.05)


def test_without_news_the_interval_grows_to_the_cap() -> None:
    plan = planner()

    delays = [plan.after_result(running()) for _ in range(8)]

    assert delays[:3] == [3.0, 4.5, 6.75]  # 1.5 times the first poll's 2 s, and so on
    assert delays == sorted(delays)
    assert delays[-1] == SCHEDULE.maximum


VIDEO = PollSchedule(first=20.0, minimum=5.0, maximum=30.0, end_interval=3.0, earliest_end=40.0)


def silent_polls(schedule: PollSchedule, seconds: float, rng: random.Random) -> list[float]:
    """When a planner polls (seconds after the submit) a task that tells nothing and lasts ``seconds``."""
    clock = FakeClock()
    plan = PollPlanner(schedule, clock=clock, submitted_at=clock.now, rng=rng)
    times = [plan.first_delay()]
    while times[-1] < seconds:
        clock.now = 1_000.0 + times[-1]
        times.append(times[-1] + plan.after_result(running()))
    return times


def test_without_news_polls_come_at_most_the_end_interval_apart_once_the_task_may_be_done() -> None:
    rng = random.Random(11)

    for seconds in (41.0, 60.0, 150.0, 300.0):
        times = silent_polls(VIDEO, seconds, rng)
        late = times[-1] - seconds  # how long after the task's end the poll that sees it comes

        assert late <= VIDEO.end_interval
        assert all(b - a <= VIDEO.end_interval for a, b in itertools.pairwise(times) if a >= 40.0)
        # bounded: the growth before earliest_end, then one poll per end_interval (less the jitter's 20 %) after it
        assert len(times) <= 4 + max(seconds - VIDEO.earliest_end, 0) / (VIDEO.end_interval * 0.8)


def test_before_the_earliest_end_polls_grow_but_none_lands_past_it_by_more_than_the_end_interval() -> None:
    times = silent_polls(VIDEO, 45.0, MidRandom())

    assert times[:2] == [20.0, 43.0]  # 30 s would pass 40 + 3 s: the second poll comes at 43 s
    assert times[2] - times[1] == pytest.approx(3.0 * 1.0)


def test_an_eta_still_plans_the_poll_past_the_end_interval() -> None:
    plan = PollPlanner(VIDEO, rng=MidRandom(), submitted_at=time.time() - 100)

    assert plan.after_result(running(eta_seconds=20)) == pytest.approx(20 * 1.05)


@pytest.mark.parametrize("api", ["novita", "jimeng", "bailian", "avatar"])
def test_every_api_sees_a_silent_task_past_its_earliest_end_within_three_seconds(api: str) -> None:
    schedule = get_api(api).poll_schedule
    rng = random.Random(5)

    for seconds in (schedule.earliest_end + 0.5, schedule.earliest_end + 7.0, 90.0, 300.0):
        times = silent_polls(schedule, seconds, rng)

        assert times[-1] - seconds <= max(3.0, times[0] - seconds)


def test_a_fixed_interval_ignores_the_eta() -> None:
    assert planner(poll_interval=0.5).after_result(running(eta_seconds=60)) == 0.5


def test_jitter_stays_within_twenty_percent() -> None:
    plan = PollPlanner(SCHEDULE, poll_interval=10.0, rng=random.Random(4))

    delays = [plan.after_result(running()) for _ in range(500)]

    assert all(8.0 <= delay <= 12.0 for delay in delays)
    assert max(delays) - min(delays) > 3.0


def test_retry_after_is_waited_out_exactly() -> None:
    error = GenMediaRateLimitError("slow down", status_code=429, retry_after=7.0)

    assert planner().after_error(error) == 7.0
    assert planner().after_error(error, failures=5) == 7.0


def test_failed_polls_back_off_from_the_usual_interval_to_the_cap() -> None:
    refused = GenMediaConnectionError("refused", connected=False)

    assert [planner(poll_interval=0.5).after_error(refused, n) for n in range(1, 9)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, MAX_OUTAGE_BACKOFF, MAX_OUTAGE_BACKOFF
    ]  # fmt: skip
    assert planner().after_error(refused) == SCHEDULE.first  # the schedule's last interval, not grown
    long_interval = planner(poll_interval=45.0)
    assert long_interval.after_error(refused, 6) == 45.0  # an interval over the cap is kept, not shortened


def test_no_delay_runs_past_the_deadline() -> None:
    clock = FakeClock()
    plan = planner(clock=clock, end_time=clock.now + 0.3)

    assert plan.first_delay() == pytest.approx(0.3)
    assert plan.after_result(running(eta_seconds=60)) == pytest.approx(0.3)
    assert plan.after_error(GenMediaRateLimitError("slow down", retry_after=30.0)) == pytest.approx(0.3)
    assert not plan.expired
    clock.now += 0.3
    assert plan.expired
    assert plan.after_result(running()) == 0.0
    assert plan.poll_budget() == 1.0


# -- riding out an outage (a fake clock: nothing sleeps) ------------------------------------------------------


class Lines:
    """A logger that keeps each line it is given, with its level."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def _keep(self, level: str, message: str, *args: object) -> None:
        self.lines.append((level, message % args))

    def info(self, message: str, *args: object) -> None:
        self._keep("info", message, *args)

    def warning(self, message: str, *args: object) -> None:
        self._keep("warning", message, *args)


def watch(clock: FakeClock, log: Lines, max_outage: float = 600.0, **kwargs: Any) -> TaskWatch:
    return TaskWatch(get_api("novita"), "t", planner(clock=clock, **kwargs), log, max_outage=max_outage)  # type: ignore[arg-type]


def bad_gateway() -> GenMediaServerError:
    return GenMediaServerError("Bad Gateway", status_code=502)


def ride(waiting: TaskWatch, clock: FakeClock, error: Exception, until: float) -> int:
    """Fail every poll with ``error`` until ``until`` seconds from now; return how many polls failed."""
    end, polls = clock.now + until, 0
    while clock.now < end:
        assert waiting.record_error(error) is None
        polls += 1
        clock.now += waiting.next_delay
    return polls


def test_a_90_s_outage_is_ridden_out_with_few_polls_and_few_lines() -> None:
    clock, log = FakeClock(), Lines()
    waiting = watch(clock, log, poll_interval=0.5)
    assert waiting.record(running(progress=10)) is None

    polls = ride(waiting, clock, bad_gateway(), until=90)
    event = waiting.record(running(progress=60))

    assert event is None
    assert polls == 8  # 0.5, 1, 2, 4, 8, 16 s apart, then 30 s: not 180 polls at the usual 0.5 s
    warnings = [line for level, line in log.lines if level == "warning"]
    assert len(warnings) == 1
    assert warnings[0].startswith("Polling novita task t failed (HTTP 502: Bad Gateway); riding it out for up to 600 s")
    assert log.lines[-2:] == [
        ("info", "Polling novita task t recovered after 92 s and 8 failed poll(s)"),
        ("info", "novita task t is running, 60 %"),
    ]
    assert waiting.next_delay == 0.5  # back to the usual interval


def test_a_new_kind_of_error_is_logged_once_and_a_new_outage_counts_afresh() -> None:
    clock, log = FakeClock(), Lines()
    waiting = watch(clock, log, max_outage=100, poll_interval=1.0)

    ride(waiting, clock, bad_gateway(), until=20)
    ride(waiting, clock, GenMediaConnectionError("connection refused", connected=False), until=20)
    ride(waiting, clock, bad_gateway(), until=20)
    waiting.record(running())
    ride(waiting, clock, bad_gateway(), until=60)  # 60 s into a new outage: within the 100 s budget again

    failed = [line.split(";")[0] for level, line in log.lines if level == "warning"]
    assert failed == [
        "Polling novita task t failed (HTTP 502: Bad Gateway)",
        "Polling novita task t failed (connection refused)",
        "Polling novita task t failed (HTTP 502: Bad Gateway)",
        "Polling novita task t failed (HTTP 502: Bad Gateway)",
    ]
    assert waiting.outage_seconds() >= 60


def test_an_outage_past_its_budget_ends_the_wait_in_error_at_the_budget() -> None:
    clock, log = FakeClock(), Lines()
    waiting = watch(clock, log, max_outage=20, poll_interval=0.5)
    started = clock.now
    rate_limited = GenMediaRateLimitError("slow down", status_code=429)

    polls = 0
    while (event := waiting.record_error(rate_limited if polls % 2 else bad_gateway())) is None:
        polls += 1
        clock.now += waiting.next_delay

    assert event.status == "error"
    assert clock.now - started == pytest.approx(20)  # the last poll is planned at the budget, not after it
    assert event.message == (
        "polling novita task t failed for 20 s (7 polls in a row), past the connection's max_outage_seconds (20 s); "
        "last error: HTTP 502: Bad Gateway"
    )
    with pytest.raises(AirflowException, match="max_outage_seconds"):
        event.outcome()


def test_a_budget_of_zero_ends_at_the_first_failure_and_a_refusal_at_once() -> None:
    clock = FakeClock()

    assert watch(clock, Lines(), max_outage=0).record_error(bad_gateway()) is not None
    refused = watch(clock, Lines()).record_error(GenMediaAuthError("invalid key", status_code=401))
    assert refused is not None and "failed: HTTP 401" in refused.message


def test_the_deadline_still_ends_an_outage_in_timeout() -> None:
    clock = FakeClock()
    waiting = watch(clock, Lines(), poll_interval=1.0, end_time=clock.now + 10)

    clock.now += 10
    event = waiting.record_error(bad_gateway())

    assert event is not None and event.status == "timeout"
