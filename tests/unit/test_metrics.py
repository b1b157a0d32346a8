"""The genmedia metrics: their names, their two tags, and what each emitter sends, read from a recording backend
installed in Airflow's own ``Stats`` (the StatsD wire format is proven on a real deployment, test_observability)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_genmedia import metrics
from airflow_provider_genmedia.exceptions import (
    GenMediaAPIError,
    GenMediaBudgetExceededError,
    GenMediaRateLimitError,
    GenMediaUncertainSubmitError,
    GenMediaValidationError,
)
from airflow_provider_genmedia.results import GenerationResult, TaskProgress, TaskStatus, Usage


class Recorder:
    """A Stats backend that keeps what it was sent: ``(kind, name, value, tags)``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any, dict[str, str] | None]] = []

    def incr(self, stat: str, count: int = 1, rate: float = 1, *, tags: dict[str, str] | None = None) -> None:
        self.sent.append(("incr", stat, count, tags))

    def timing(self, stat: str, dt: Any, *, tags: dict[str, str] | None = None) -> None:
        self.sent.append(("timing", stat, dt, tags))


@pytest.fixture
def sent() -> Iterator[list[tuple[str, str, Any, dict[str, str] | None]]]:
    """Install a `Recorder` as the backend of the running Airflow's ``Stats``; restore the previous one after."""
    from airflow.providers.common.compat.sdk import Stats

    recorder = Recorder()
    if type(Stats) is type:  # Airflow 3.3: a module-level backend made by a factory
        module = sys.modules[Stats.incr.__module__]
        saved = {name: getattr(module, name) for name in ("_factory", "_backend", "_export_legacy_names")}
        Stats.initialize(factory=lambda: recorder, export_legacy_names=False)
        yield recorder.sent
        for name, value in saved.items():
            setattr(module, name, value)
        return
    # Airflow 3.0-3.2: a metaclass keeps one instance on the class (3.2 also the pid that made it)
    saved_class = {name: Stats.__dict__[name] for name in ("instance", "_instance_pid") if name in Stats.__dict__}
    type.__setattr__(Stats, "instance", recorder)
    type.__setattr__(Stats, "_instance_pid", os.getpid())
    yield recorder.sent
    for name in ("instance", "_instance_pid"):
        if name in saved_class:
            type.__setattr__(Stats, name, saved_class[name])
        else:
            type.__delattr__(Stats, name)


def test_every_metric_is_named_genmedia_and_tagged_with_api_and_outcome_only(sent: list[Any]) -> None:
    metrics.count_submit("novita", metrics.CREATED)
    metrics.count_review("avatar", approved=False)
    metrics.count_published("jimeng", [{"bytes": 10, "written": True}, {"bytes": 7, "written": False}])
    meter = metrics.PollMeter("bailian", submitted_at=100.0, clock=iter([110.0, 112.0, 115.0]).__next__)
    meter.answered(TaskProgress(TaskStatus.RUNNING, 50.0))
    meter.answered(GenerationResult(api="bailian", task_id="t", status=TaskStatus.SUCCEEDED))
    assert sent
    for _kind, name, _value, tags in sent:
        assert name.startswith("genmedia.")
        assert tags is not None and set(tags) == {"api", "outcome"}


def test_submit_outcomes_tell_created_resumed_uncertain_budget_and_refusals() -> None:
    assert metrics.submit_outcome(GenMediaUncertainSubmitError("novita", "/v3/async/img2img", "no answer")) == (
        metrics.UNCERTAIN
    )
    budget = GenMediaBudgetExceededError("novita_default: max_jobs_per_day 7 reached")
    assert metrics.submit_outcome(budget) == metrics.BUDGET_EXCEEDED
    assert metrics.submit_outcome(GenMediaValidationError("prompt", "too long")) == metrics.REFUSED
    assert metrics.submit_outcome(RuntimeError("a bug proves nothing")) == metrics.ERROR


def test_a_wait_counts_polls_and_times_the_task_and_the_detection_lag(sent: list[Any]) -> None:
    clock = iter([100.0, 103.0, 106.0, 108.0, 111.0]).__next__
    meter = metrics.PollMeter("jimeng", submitted_at=95.0, clock=clock)  # the wait starts at 100
    meter.answered(TaskProgress(TaskStatus.QUEUED))  # 103
    meter.failed(GenMediaRateLimitError("slow down", status_code=429, api="jimeng"))
    meter.failed(GenMediaAPIError("bad gateway", status_code=502, api="jimeng"))
    meter.failed(None)
    meter.answered(TaskProgress(TaskStatus.RUNNING))  # 106
    meter.answered(GenerationResult(api="jimeng", task_id="t", status=TaskStatus.FAILED))  # 108
    polls = [tags["outcome"] for kind, name, _, tags in sent if name == metrics.POLLS]
    assert polls == ["running", "rate_limited", "error", "timeout", "running", "ended"]
    timings = {name: (value, tags["outcome"]) for kind, name, value, tags in sent if kind == "timing"}
    assert timings == {
        metrics.TASK_DURATION: (timedelta(seconds=13), "failed"),
        metrics.DETECTION_LAG: (timedelta(seconds=2), "failed"),
    }


def test_a_task_ended_before_its_first_poll_is_timed_from_the_start_of_the_wait(sent: list[Any]) -> None:
    meter = metrics.PollMeter("novita", submitted_at=None, clock=iter([50.0, 53.5]).__next__)
    meter.answered(GenerationResult(api="novita", task_id="t", status=TaskStatus.SUCCEEDED))
    assert [(name, value) for kind, name, value, _ in sent if kind == "timing"] == [
        (metrics.DETECTION_LAG, timedelta(seconds=3.5))
    ]


def test_nsfw_verdicts_are_counted_by_source_and_outcome(sent: list[Any]) -> None:
    from airflow_provider_genmedia.nsfw import filter_nsfw

    outputs = [
        {"url": "https://cdn/0.png?sig=x", "kind": "image", "nsfw": {"checked": True, "confidence": 2.0}},
        {"url": "https://cdn/1.png?sig=x", "kind": "image", "nsfw": {"checked": True, "confidence": 91.0}},
        {"url": "https://cdn/2.png?sig=x", "kind": "image"},
    ]
    result = GenerationResult.model_validate(
        {"api": "novita", "task_id": "t", "status": "succeeded", "outputs": outputs}
    )
    filtered = filter_nsfw(result, 50.0, "reject", None)
    metrics.count_verdicts(result, filtered)
    assert [(name, tags["outcome"]) for _, name, _, tags in sent] == [
        ("genmedia.nsfw.vendor", "kept"),
        ("genmedia.nsfw.vendor", "flagged"),
        ("genmedia.nsfw.none", "unchecked"),
    ]


def test_published_files_and_bytes_and_estimated_cost(sent: list[Any]) -> None:
    metrics.count_published("avatar", [{"bytes": 1200, "written": True}, {"bytes": 300, "written": False}])
    result = GenerationResult(
        api="bailian",
        task_id="t",
        status=TaskStatus.SUCCEEDED,
        usage=Usage(outputs=1, estimated_cost=0.35, currency="USD"),
    )
    metrics.count_cost(result)
    metrics.count_cost(result.model_copy(update={"usage": None}))
    assert [(name, value, tags["outcome"]) for _, name, value, tags in sent] == [
        ("genmedia.published_files", 1, "written"),
        ("genmedia.published_bytes", 1200, "written"),
        ("genmedia.published_files", 1, "unchanged"),
        ("genmedia.published_bytes", 300, "unchanged"),
        ("genmedia.estimated_cost.usd", 350_000, "succeeded"),
    ]
    assert metrics.cost_metric_name("€ / x") == "genmedia.estimated_cost.____x"


def test_a_negative_duration_is_sent_as_zero(sent: list[Any]) -> None:
    metrics.timing(metrics.TASK_DURATION, "novita", "succeeded", -5.0)
    assert sent == [("timing", metrics.TASK_DURATION, timedelta(0), {"api": "novita", "outcome": "succeeded"})]
