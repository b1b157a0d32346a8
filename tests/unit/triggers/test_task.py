"""GenMediaTaskTrigger against a real local HTTP server: one event per wait, bound or not to a task instance."""

from __future__ import annotations

import asyncio
import importlib
import json
import time

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from airflow.triggers.base import TriggerEvent
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia.events import TaskEvent
from airflow_provider_genmedia.exceptions import GenMediaTaskFailedError
from airflow_provider_genmedia.results import TaskStatus
from airflow_provider_genmedia.triggers.task import GenMediaTaskTrigger
from tests.unit.triggers.supervisor import Supervisor, bind
from tests.unit.triggers.vendor import (
    API_KEY,
    Answer,
    gptge_route,
    jimeng_task,
    novita_route,
    novita_task,
    use_connection,
)

try:
    from airflow.sdk.serde import serialize
except ImportError:  # Airflow < 3.2 keeps serde in core
    from airflow.serialization.serde import serialize


FAST = 0.05


async def run_to_end(trigger: GenMediaTaskTrigger, limit: float = 15.0) -> list[TriggerEvent]:
    async def collect() -> list[TriggerEvent]:
        return [event async for event in trigger.run()]

    return await asyncio.wait_for(collect(), limit)


def novita_trigger(task_id: str, **kwargs: float) -> GenMediaTaskTrigger:
    kwargs.setdefault("poll_interval", FAST)
    return GenMediaTaskTrigger(api="novita", genmedia_task_id=task_id, conn_id="novita_default", **kwargs)


# -- the trigger against a local vendor ---------------------------------------------------------------------


async def test_success_after_progress_yields_one_event_with_the_outputs(novita: HTTPServer) -> None:
    route = novita_route(
        novita,
        "t-ok",
        Answer(novita_task("t-ok", "TASK_STATUS_QUEUED")),
        Answer(novita_task("t-ok", "TASK_STATUS_PROCESSING", progress=40, eta=3)),
        Answer(novita_task("t-ok", "TASK_STATUS_PROCESSING", progress=80, eta=1)),
        Answer(novita_task("t-ok", "TASK_STATUS_SUCCEED", images=2)),
    )

    events = await run_to_end(novita_trigger("t-ok"))

    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "succeeded"
    assert (payload["api"], payload["task_id"]) == ("novita", "t-ok")
    assert "2 output(s)" in payload["message"]
    assert [output["url"] for output in payload["result"]["outputs"]] == [
        "https://faas-output-image.s3.ap-southeast-1.amazonaws.com/prod/t-ok-0.png",
        "https://faas-output-image.s3.ap-southeast-1.amazonaws.com/prod/t-ok-1.png",
    ]
    assert len(route.calls) == 4
    assert set(route.authorizations) == {f"Bearer {API_KEY}"}
    result = TaskEvent.from_payload(payload).outcome()
    assert result.status is TaskStatus.SUCCEEDED
    assert result.seed == 158881667


async def test_new_statuses_and_quarters_of_progress_are_logged_without_the_key(
    novita: HTTPServer, capsys: pytest.CaptureFixture
) -> None:
    novita_route(
        novita,
        "t-log",
        Answer(novita_task("t-log", "TASK_STATUS_PROCESSING", progress=10)),
        Answer(novita_task("t-log", "TASK_STATUS_PROCESSING", progress=10)),
        Answer(novita_task("t-log", "TASK_STATUS_PROCESSING", progress=20)),
        Answer(novita_task("t-log", "TASK_STATUS_PROCESSING", progress=60)),
        Answer(novita_task("t-log", "TASK_STATUS_SUCCEED", images=1)),
    )

    await run_to_end(novita_trigger("t-log"))

    output = capsys.readouterr()
    logged = output.out + output.err
    assert logged.count("novita task t-log is running, 10 %") == 1
    assert "is running, 20 %" not in logged  # still the first quarter
    assert "novita task t-log is running, 60 %" in logged
    assert "novita task t-log is succeeded" in logged
    assert API_KEY not in logged


async def test_failed_task_carries_the_vendor_reason(novita: HTTPServer) -> None:
    novita_route(
        novita,
        "t-bad",
        Answer(novita_task("t-bad", "TASK_STATUS_PROCESSING", progress=20)),
        Answer(novita_task("t-bad", "TASK_STATUS_FAILED", reason="NSFW content detected in the input image")),
    )

    events = await run_to_end(novita_trigger("t-bad"))

    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "failed"
    assert payload["result"] is None  # the reason is in the message: Airflow logs the whole payload
    assert payload["message"].endswith("NSFW content detected in the input image")
    with pytest.raises(GenMediaTaskFailedError, match=r"t-bad failed: NSFW content detected"):
        TaskEvent.from_payload(payload).outcome()


async def test_retry_after_of_a_rate_limit_is_honoured(monkeypatch: pytest.MonkeyPatch, vendor: HTTPServer) -> None:
    use_connection(monkeypatch, "novita", vendor, max_retries=0)  # the trigger, not the hook, must wait
    route = novita_route(
        vendor,
        "t-429",
        Answer({"code": 429, "reason": "RATE_LIMIT", "message": "too many requests"}, 429, {"retry-after-ms": "300"}),
        Answer(novita_task("t-429", "TASK_STATUS_SUCCEED", images=1)),
    )

    events = await run_to_end(novita_trigger("t-429"))

    assert [event.payload["status"] for event in events] == ["succeeded"]
    assert len(route.calls) == 2
    assert route.calls[1] - route.calls[0] >= 0.29  # the 0.3 s asked, not the 0.05 s interval


async def test_deadline_while_the_vendor_works_ends_promptly_in_timeout(novita: HTTPServer) -> None:
    novita_route(novita, "t-slow", Answer(novita_task("t-slow", "TASK_STATUS_PROCESSING", progress=30, eta=600)))
    end_time = time.time() + 0.3

    events = await run_to_end(novita_trigger("t-slow", poll_interval=5.0, end_time=end_time))
    ended = time.time()

    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "timeout"
    assert end_time <= ended < end_time + 1.0
    assert "(last status: running)" in payload["message"]
    with pytest.raises(AirflowException, match=r"t-slow was still running at the deadline") as raised:
        TaskEvent.from_payload(payload).outcome()
    assert not isinstance(raised.value, AirflowFailException)


async def test_a_poll_hanging_past_the_deadline_is_cut_off(novita: HTTPServer) -> None:
    novita_route(
        novita,
        "t-hang",
        Answer(novita_task("t-hang", "TASK_STATUS_PROCESSING", progress=50)),
        Answer(novita_task("t-hang", "TASK_STATUS_PROCESSING", progress=50), delay=3.0),
    )
    end_time = time.time() + 0.3

    events = await run_to_end(novita_trigger("t-hang", poll_interval=0.1, end_time=end_time))

    assert [event.payload["status"] for event in events] == ["timeout"]
    assert time.time() < end_time + 1.5
    assert "(last status: running)" in events[0].payload["message"]


async def test_jimeng_video_through_gptge(monkeypatch: pytest.MonkeyPatch, vendor: HTTPServer) -> None:
    use_connection(monkeypatch, "gptge", vendor)
    video = "https://v9-vvecloud.yangyi08.com/f0eaae18/video/tos/cn/okRBiAvIdFwA4AaTEAARifhJhrCY0EKXXAVaQR/?a=7073"
    route = gptge_route(
        vendor,
        "14117763723766220057",
        Answer(jimeng_task("in_queue")),
        Answer(jimeng_task("generating")),
        Answer(jimeng_task("done", video)),
    )
    trigger = GenMediaTaskTrigger("jimeng", "14117763723766220057", "gptge_default", poll_interval=FAST)

    events = await run_to_end(trigger)

    assert len(events) == 1
    result = TaskEvent.from_payload(events[0].payload).outcome()
    assert (result.api, result.status, result.seed) == ("jimeng", TaskStatus.SUCCEEDED, 1460981510)
    assert [(output.url, output.kind) for output in result.outputs] == [(video, "video")]
    assert len(route.calls) == 3


async def test_auth_error_ends_at_once_without_the_key(novita: HTTPServer) -> None:
    route = novita_route(
        novita,
        "t-auth",
        Answer({"code": 401, "reason": "INVALID_API_KEY", "message": f"invalid api key {API_KEY}"}, 401),
    )

    events = await run_to_end(novita_trigger("t-auth"))

    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "error"
    assert "401" in payload["message"]
    assert API_KEY not in json.dumps(payload)
    assert len(route.calls) == 1
    with pytest.raises(AirflowException, match="401") as raised:
        TaskEvent.from_payload(payload).outcome()
    assert API_KEY not in str(raised.value)


async def test_transient_errors_past_the_outage_budget_end_in_error(
    monkeypatch: pytest.MonkeyPatch, vendor: HTTPServer
) -> None:
    use_connection(monkeypatch, "novita", vendor, max_retries=0, max_outage_seconds=0.3)
    route = novita_route(vendor, "t-5xx", Answer({"code": 500, "message": "internal error"}, 503))

    events = await run_to_end(novita_trigger("t-5xx"))

    assert len(events) == 1
    message = events[0].payload["message"]
    assert events[0].payload["status"] == "error"
    assert "past the connection's max_outage_seconds (0.3 s); last error: HTTP 503" in message
    # Backoff from the 0.05 s interval: polls at 0.05, 0.1, 0.2 s after the first failure, then one at the budget.
    assert 3 <= len(route.calls) <= 6


async def test_transient_errors_and_an_early_404_are_tolerated(
    monkeypatch: pytest.MonkeyPatch, vendor: HTTPServer
) -> None:
    use_connection(monkeypatch, "novita", vendor, max_retries=0)
    failures = 3
    route = novita_route(
        vendor,
        "t-lag",
        *[Answer({"code": 404, "reason": "TASK_NOT_FOUND", "message": "task not found"}, 404)] * failures,
        Answer(novita_task("t-lag", "TASK_STATUS_PROCESSING", progress=5)),
        *[Answer({"code": 500, "message": "internal error"}, 502)] * failures,
        Answer(novita_task("t-lag", "TASK_STATUS_SUCCEED", images=1)),
    )

    events = await run_to_end(novita_trigger("t-lag", poll_interval=0.02))

    assert [event.payload["status"] for event in events] == ["succeeded"]
    assert len(route.calls) == 2 * failures + 2


async def test_the_event_names_the_try_the_wait_was_started_for(novita: HTTPServer) -> None:
    novita_route(novita, "t-try", Answer(novita_task("t-try", "TASK_STATUS_FAILED", reason="bad model")))
    bound = bind(novita_trigger("t-try"))
    bound.task_instance.try_number = 4  # type: ignore[union-attr]
    # A trigger serialized before try_number existed still loads.
    _, kwargs = novita_trigger("t-try").serialize()
    older = GenMediaTaskTrigger(**{key: value for key, value in kwargs.items() if key != "try_number"})

    payloads = [(await run_to_end(trigger))[0].payload for trigger in (novita_trigger("t-try", try_number=3), bound)]
    (unknown,) = await run_to_end(older)

    assert [payload["try_number"] for payload in payloads] == [3, 4]
    assert "try_number" not in unknown.payload
    assert TaskEvent.from_payload(unknown.payload).try_number is None


async def test_a_missing_connection_ends_in_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NOVITA_MISSING", raising=False)
    trigger = GenMediaTaskTrigger("novita", "t-x", "novita_missing", poll_interval=FAST)

    events = await run_to_end(trigger)

    assert len(events) == 1
    assert events[0].payload["status"] == "error"
    assert "novita_missing" in events[0].payload["message"]


def test_serialize_round_trip_holds_plain_json_and_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "novita", "host": "http://127.0.0.1:9", "password": API_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_NOVITA_DEFAULT", json.dumps(conn))
    trigger = GenMediaTaskTrigger(
        "novita",
        "t-ser",
        "novita_default",
        poll_interval=2.5,
        end_time=1_900_000_000.5,
        request={"request": {"prompt": "a fox", "image_base64": "<1.2 kB base64>"}},
        end_task=True,
        submitted_at=1_899_999_000.0,
        path="/v3/async/img2img",
        try_number=2,
        push_result=False,
    )

    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)

    assert classpath == "airflow_provider_genmedia.triggers.task.GenMediaTaskTrigger"
    assert kwargs == {
        "api": "novita",
        "genmedia_task_id": "t-ser",
        "conn_id": "novita_default",
        "poll_interval": 2.5,
        "end_time": 1_900_000_000.5,
        "request": {"request": {"prompt": "a fox", "image_base64": "<1.2 kB base64>"}},
        "end_task": True,
        "submitted_at": 1_899_999_000.0,
        "path": "/v3/async/img2img",
        "try_number": 2,
        "push_result": False,
    }
    assert rebuilt.serialize() == (classpath, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert API_KEY not in json.dumps(serialize(kwargs))
    assert API_KEY not in repr(trigger)


def test_an_invalid_poll_interval_is_refused_before_it_is_stored() -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        GenMediaTaskTrigger("novita", "t", "c", poll_interval=0)


async def test_an_unknown_api_ends_in_one_error_event_naming_it() -> None:
    # A trigger started from a sensor is built from its unrendered arguments: the API is checked when it runs.
    events = await run_to_end(GenMediaTaskTrigger("midjourney", "t-mj", "c", poll_interval=FAST))

    assert [event.payload["status"] for event in events] == ["error"]
    assert "midjourney" in events[0].payload["message"]


async def test_a_trigger_bound_to_a_task_instance_still_polls_the_vendor_task(novita: HTTPServer) -> None:
    route = novita_route(
        novita, "0a27c341-vendor", Answer(novita_task("0a27c341-vendor", "TASK_STATUS_SUCCEED", images=1))
    )
    trigger = novita_trigger("0a27c341-vendor")
    bind(trigger)  # the task instance of the Airflow task "restyle"

    events = await run_to_end(trigger)

    # Airflow 3.1+ names a bound trigger's ``task_id`` after the Airflow task (3.0 has no such attribute): the
    # vendor's id never lives there.
    assert getattr(trigger, "task_id", "restyle") == "restyle"
    assert trigger.genmedia_task_id == "0a27c341-vendor"
    assert [request.args["task_id"] for request, _ in novita.log] == ["0a27c341-vendor"]
    assert len(route.calls) == 1
    assert [(event.payload["status"], event.payload["task_id"]) for event in events] == [
        ("succeeded", "0a27c341-vendor")
    ]


async def test_on_kill_says_the_vendor_task_keeps_running(capsys: pytest.CaptureFixture) -> None:
    await novita_trigger("t-kill").on_kill()

    output = capsys.readouterr()
    assert "vendor task t-kill keeps running and is still billed" in output.out + output.err


async def test_an_event_that_resumes_on_a_worker_is_held_until_the_deferral_has_settled(
    novita: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__GENMEDIA__DEFER_SETTLE", "0.4")
    novita_route(novita, "t-fast", Answer(novita_task("t-fast", "TASK_STATUS_FAILED", reason="bad seed")))
    started = time.monotonic()

    events = await run_to_end(GenMediaTaskTrigger("novita", "t-fast", "novita_default", FAST, end_task=True))

    assert [event.payload["status"] for event in events] == ["failed"]
    assert time.monotonic() - started >= 0.4


async def test_a_task_ended_in_the_triggerer_is_not_held(
    novita: HTTPServer, monkeypatch: pytest.MonkeyPatch, supervisor: Supervisor
) -> None:
    # Nothing resumes on a worker, so no late report of the deferral can fail a resumed try.
    monkeypatch.setenv("AIRFLOW__GENMEDIA__DEFER_SETTLE", "5")
    novita_route(novita, "t-fast", Answer(novita_task("t-fast", "TASK_STATUS_SUCCEED", images=1)))
    started = time.monotonic()

    trigger = bind(GenMediaTaskTrigger("novita", "t-fast", "novita_default", FAST, end_task=True))
    events = await run_to_end(trigger)

    assert [type(event).__name__ for event in events] == ["TaskSuccessEvent"]
    assert time.monotonic() - started < 2


async def test_the_first_poll_is_planned_from_the_submit(novita: HTTPServer) -> None:
    route = novita_route(novita, "t-sub", Answer(novita_task("t-sub", "TASK_STATUS_SUCCEED", images=1)))
    # Submitted 1.9 s ago: Novita's first poll (2 s after the submit, jittered by 20 %) is at most 0.5 s away.
    trigger = GenMediaTaskTrigger("novita", "t-sub", "novita_default", submitted_at=time.time() - 1.9)
    started = time.time()

    await run_to_end(trigger)

    assert route.calls[0] - started < 0.5 + FAST
