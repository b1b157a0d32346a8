"""The poll planner's maths, and the worker-side wait against a real local HTTP server."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.apis.base import PollSchedule
from airflow_provider_genmedia.exceptions import GenMediaConnectionError, GenMediaRateLimitError
from airflow_provider_genmedia.hooks.genmedia import NovitaHook
from airflow_provider_genmedia.polling import PollPlanner, wait_for_task
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
    hook = NovitaHook()
    result = wait_for_task(hook, get_api("novita"), "t-sync", poll_interval=FAST)
    with pytest.raises(AirflowFailException, match="t-sync-bad failed: bad model"):
        wait_for_task(hook, get_api("novita"), "t-sync-bad", poll_interval=FAST)
    with pytest.raises(AirflowException, match="t-sync-slow was still running at the deadline"):
        wait_for_task(hook, get_api("novita"), "t-sync-slow", poll_interval=FAST, end_time=time.time() + 0.3)

    assert result.status is TaskStatus.SUCCEEDED
    assert len(result.outputs) == 1


def test_wait_for_task_does_not_wait_out_a_retry_after_past_its_deadline(novita: HTTPServer) -> None:
    limited = Answer({"reason": "RATE_LIMIT_EXCEEDED"}, status=429, headers={"Retry-After": "100"})
    novita_route(novita, "t-limited", limited)
    hook = NovitaHook()
    started = time.monotonic()
    with pytest.raises(AirflowException, match="t-limited was still running at the deadline"):
        wait_for_task(hook, get_api("novita"), "t-limited", poll_interval=FAST, end_time=time.time() + 1)
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
    assert planner().after_error(GenMediaConnectionError("refused", connected=False)) == 3.0


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
