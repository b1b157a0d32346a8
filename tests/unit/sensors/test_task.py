"""GenMediaTaskSensor against a real local HTTP server: poking, deferring, and resuming from a real event."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSensorTimeout, TaskDeferred
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia.events import TaskEvent
from airflow_provider_genmedia.results import GenerationResult, TaskStatus
from airflow_provider_genmedia.sensors.task import GenMediaTaskSensor
from airflow_provider_genmedia.triggers.task import GenMediaTaskTrigger
from tests.unit.operators.test_submit import TaskInstance
from tests.unit.triggers.supervisor import Supervisor, bind
from tests.unit.triggers.vendor import Answer, novita_route, novita_task

FAST = 0.05


def final_event(trigger: GenMediaTaskTrigger) -> TriggerEvent:
    """Run the trigger to its end, as the triggerer would, and return its one event."""

    async def collect() -> list[TriggerEvent]:
        return [event async for event in trigger.run()]

    (event,) = asyncio.run(asyncio.wait_for(collect(), 10))
    return event


def final_payload(trigger: GenMediaTaskTrigger) -> dict[str, Any]:
    """The payload of the trigger's one event, which resumes the sensor on a worker."""
    return dict(final_event(trigger).payload)


def sensor(vendor_task_id: str, **kwargs: Any) -> GenMediaTaskSensor:
    return GenMediaTaskSensor(
        task_id="wait_for_render", api="novita", genmedia_task_id=vendor_task_id, poll_interval=FAST, **kwargs
    )


def test_poking_returns_the_result_json_once_the_task_succeeded(novita: HTTPServer) -> None:
    route = novita_route(
        novita,
        "s-ok",
        Answer(novita_task("s-ok", "TASK_STATUS_QUEUED")),
        Answer(novita_task("s-ok", "TASK_STATUS_PROCESSING", progress=50)),
        Answer(novita_task("s-ok", "TASK_STATUS_SUCCEED", images=1)),
    )

    returned = sensor("s-ok", deferrable=False).execute(context={})

    result = GenerationResult.model_validate(returned)
    assert (result.task_id, result.status) == ("s-ok", TaskStatus.SUCCEEDED)
    assert result.outputs[0].url.endswith("/s-ok-0.png")
    assert returned == result.model_dump(mode="json")
    assert len(route.calls) == 3


def test_poking_rides_out_a_vendor_outage(novita: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_NOVITA_FLAKY",
        f'{{"conn_type": "novita", "host": "{novita.url_for("/")}", "password": "emulator-key", '
        '"extra": {"max_retries": 0}}',
    )
    route = novita_route(
        novita,
        "s-flaky",
        Answer({"reason": "GET_RESULT_FAILED"}, status=500),
        Answer({"reason": "GET_RESULT_FAILED"}, status=503),
        Answer(novita_task("s-flaky", "TASK_STATUS_SUCCEED", images=1)),
    )

    returned = sensor("s-flaky", deferrable=False, conn_id="novita_flaky").execute(context={})

    assert returned["status"] == "succeeded"
    assert len(route.calls) == 3


def test_poking_a_failed_task_fails_without_retry(novita: HTTPServer) -> None:
    novita_route(novita, "s-bad", Answer(novita_task("s-bad", "TASK_STATUS_FAILED", reason="invalid model_name")))

    with pytest.raises(AirflowFailException, match="s-bad failed: invalid model_name"):
        sensor("s-bad", deferrable=False).execute(context={})


def test_deferring_hands_a_trigger_over_and_resumes_from_its_event(novita: HTTPServer, supervisor: Supervisor) -> None:
    route = novita_route(
        novita,
        "s-def",
        Answer(novita_task("s-def", "TASK_STATUS_PROCESSING", progress=10)),
        Answer(novita_task("s-def", "TASK_STATUS_PROCESSING", progress=70)),
        Answer(novita_task("s-def", "TASK_STATUS_SUCCEED", images=2)),
    )
    waiting = sensor("s-def", deferrable=True, timeout=600)

    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute(context={})

    assert len(route.calls) == 1  # one status check before deferring
    trigger = deferred.value.trigger
    assert isinstance(trigger, GenMediaTaskTrigger)
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert kwargs["api"] == "novita"
    assert kwargs["genmedia_task_id"] == "s-def"
    assert kwargs["conn_id"] == "novita_default"
    assert kwargs["poll_interval"] == FAST
    assert time.time() + 590 < kwargs["end_time"] <= time.time() + 600
    assert (kwargs["end_task"], kwargs["request"]) == (True, None)

    ended = final_event(bind(trigger))

    # The triggerer ends the sensor: its result as the vendor gave it, and the first output's link.
    assert isinstance(ended, TaskSuccessEvent)
    result = GenerationResult.model_validate(supervisor.xcoms["return_value"])
    assert (result.status, len(result.outputs)) == (TaskStatus.SUCCEEDED, 2)
    assert ended.xcoms == {"_link_FirstOutputLink": result.outputs[0].url}


def test_a_task_already_done_is_returned_without_deferring(novita: HTTPServer) -> None:
    novita_route(novita, "s-done", Answer(novita_task("s-done", "TASK_STATUS_SUCCEED", images=1)))

    returned = sensor("s-done", deferrable=True).execute(context={})

    assert returned["status"] == "succeeded"


def test_a_trigger_timeout_becomes_a_sensor_timeout(novita: HTTPServer) -> None:
    novita_route(novita, "s-slow", Answer(novita_task("s-slow", "TASK_STATUS_PROCESSING", progress=5)))
    trigger = GenMediaTaskTrigger("novita", "s-slow", "novita_default", poll_interval=FAST, end_time=time.time() + 0.2)

    payload = final_payload(trigger)

    with pytest.raises(AirflowSensorTimeout, match="s-slow was still running at the deadline"):
        sensor("s-slow").execute_complete(context={}, event=payload)


def test_an_event_left_by_an_earlier_try_checks_the_task_again_and_defers(novita: HTTPServer) -> None:
    route = novita_route(novita, "s-again", Answer(novita_task("s-again", "TASK_STATUS_PROCESSING", progress=5)))
    ended = TaskEvent(status="timeout", api="novita", task_id="s-again", message="still running", result=None)
    left_behind = ended.model_copy(update={"try_number": 1}).to_payload()

    with pytest.raises(TaskDeferred) as deferred:
        sensor("s-again", deferrable=True).execute_complete(
            context={"ti": TaskInstance(try_number=2)}, event=left_behind
        )

    assert deferred.value.trigger.serialize()[1]["try_number"] == 2
    assert len(route.calls) == 1
    with pytest.raises(AirflowSensorTimeout, match="still running"):
        sensor("s-again").execute_complete(context={"ti": TaskInstance(try_number=1)}, event=left_behind)


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the triggerer renders templated arguments from Airflow 3.3")
def test_a_deferrable_sensor_starts_in_the_triggerer_with_its_templated_arguments() -> None:
    waiting = GenMediaTaskSensor(
        task_id="wait",
        api="jimeng",
        genmedia_task_id="{{ ti.xcom_pull(task_ids='submit', key='genmedia_task_id', map_indexes=-1) }}",
        deferrable=True,
        timeout=120,
        start_from_trigger=True,
    )
    poking = GenMediaTaskSensor(
        task_id="poke", api="jimeng", genmedia_task_id="j-1", deferrable=False, start_from_trigger=True
    )
    # Airflow 3.3.2's triggerer cannot answer a pull of every map index: that sensor defers from a worker.
    pulling_all = GenMediaTaskSensor(
        task_id="all",
        api="jimeng",
        genmedia_task_id="{{ ti.xcom_pull(task_ids='submit', key='genmedia_task_id') }}",
        deferrable=True,
        start_from_trigger=True,
    )

    args = waiting.start_trigger_args
    assert waiting.start_from_trigger is True
    assert poking.start_from_trigger is False
    assert pulling_all.start_from_trigger is False
    assert args is not None
    assert args.trigger_cls == "airflow_provider_genmedia.triggers.task.GenMediaTaskTrigger"
    assert args.next_method == "execute_complete"
    assert args.timeout == timedelta(seconds=120)
    assert args.trigger_kwargs is not None
    # The triggerer renders the sensor's template fields that the trigger has under the same names.
    trigger = GenMediaTaskTrigger(**args.trigger_kwargs)
    assert {field for field in GenMediaTaskSensor.template_fields if hasattr(trigger, field)} == {
        "api",
        "genmedia_task_id",
        "conn_id",
    }
    assert trigger.genmedia_task_id == waiting.genmedia_task_id


def test_a_sensor_with_plain_arguments_starts_in_the_triggerer_on_every_airflow() -> None:
    waiting = GenMediaTaskSensor(
        task_id="wait", api="jimeng", genmedia_task_id="j-1", deferrable=True, timeout=60, start_from_trigger=True
    )
    assert waiting.start_from_trigger is True
    assert waiting.start_trigger_args is not None
    assert waiting.start_trigger_args.trigger_kwargs == {
        "api": "jimeng",
        "genmedia_task_id": "j-1",
        "conn_id": None,
        "poll_interval": None,
        "end_time": None,  # the wait begins when Airflow creates the trigger: its trigger timeout is the deadline
        "request": None,
        "end_task": True,
        "submitted_at": None,
        "path": None,
        "try_number": None,
        "push_result": True,
    }
    assert waiting.start_trigger_args.timeout == timedelta(seconds=60)


def test_a_sensor_without_do_xcom_push_asks_its_trigger_to_write_no_result() -> None:
    waiting = GenMediaTaskSensor(
        task_id="wait", api="jimeng", genmedia_task_id="j-1", deferrable=True, timeout=60, do_xcom_push=False
    )

    assert waiting.start_trigger_args is not None
    assert waiting.start_trigger_args.trigger_kwargs is not None
    assert waiting.start_trigger_args.trigger_kwargs["push_result"] is False


def test_start_from_trigger_false_checks_once_on_a_worker_before_deferring() -> None:
    by_default = GenMediaTaskSensor(task_id="wait", api="jimeng", genmedia_task_id="j-1", deferrable=True)
    on_a_worker = GenMediaTaskSensor(
        task_id="check", api="jimeng", genmedia_task_id="j-1", deferrable=True, start_from_trigger=False
    )
    assert (by_default.start_from_trigger, on_a_worker.start_from_trigger, on_a_worker.deferrable) == (
        True,
        False,
        True,
    )


@pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="this Airflow renders templated arguments in the triggerer")
def test_before_airflow_3_3_a_templated_sensor_defers_from_a_worker(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level("INFO"):
        waiting = GenMediaTaskSensor(
            task_id="wait",
            api="jimeng",
            genmedia_task_id="{{ ti.xcom_pull(task_ids='submit', key='genmedia_task_id', map_indexes=-1) }}",
            deferrable=True,
            start_from_trigger=True,
        )
    assert waiting.start_from_trigger is False
    assert waiting.deferrable is True
    logged = caplog.text + "".join(capsys.readouterr())  # Airflow 3.2's operator log goes to structlog's output
    assert "defers from a worker: Airflow before 3.3 cannot render" in logged


def test_the_vendor_task_id_is_templated() -> None:
    assert set(GenMediaTaskSensor.template_fields) == {"api", "genmedia_task_id", "conn_id"}
    assert sensor("s-x").poke_interval == FAST
