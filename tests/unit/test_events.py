"""The event that ends every wait: built from results, read back across the triggerer/worker boundary."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_genmedia.events import TaskEvent
from airflow_provider_genmedia.exceptions import GenMediaTaskFailedError
from airflow_provider_genmedia.results import GenerationResult, TaskStatus

# -- the event contract -------------------------------------------------------------------------------------


def _result(status: TaskStatus, **fields: Any) -> GenerationResult:
    return GenerationResult(api="novita", task_id="t-ev", status=status, **fields)


SUCCEEDED = TaskEvent.completed(_result(TaskStatus.SUCCEEDED))


@pytest.mark.parametrize(
    ("event", "match"),
    [
        (None, "missing"),
        ({"status": "succeeded", "api": "novita", "task_id": "t-ev"}, "lacks"),
        ({"status": "success", "api": "novita", "task_id": "t-ev", "message": "", "result": None}, "'success'"),
        ({"status": "succeeded", "api": "novita", "task_id": "t-ev", "message": "", "result": None}, "no valid"),
        (
            TaskEvent.completed(_result(TaskStatus.SUCCEEDED)).to_payload() | {"status": "error", "message": "boom"},
            "boom",
        ),
    ],
)
def test_event_outcome_fails_loudly(event: dict | None, match: str) -> None:
    with pytest.raises(AirflowException, match=match) as raised:
        TaskEvent.from_payload(event).outcome()
    assert not isinstance(raised.value, AirflowFailException)


@pytest.mark.parametrize("status", [TaskStatus.FAILED, TaskStatus.CANCELED, TaskStatus.EXPIRED])
def test_event_outcome_fails_without_retry_on_a_finished_task(status: TaskStatus) -> None:
    event = TaskEvent.completed(_result(status, reason="quota exhausted")).to_payload()

    with pytest.raises(GenMediaTaskFailedError, match=f"novita task t-ev {status.value}: quota exhausted"):
        TaskEvent.from_payload(event).outcome()


def test_event_outcome_rereads_the_result_from_the_event() -> None:
    result = _result(TaskStatus.SUCCEEDED, progress=100.0, seed=7)

    assert TaskEvent.from_payload(json.loads(json.dumps(TaskEvent.completed(result).to_payload()))).outcome() == result


class _Ti:
    def __init__(self, try_number: object) -> None:
        self.try_number = try_number


def test_an_event_tells_whether_an_earlier_try_started_its_wait() -> None:
    ended = TaskEvent(status="error", api="novita", task_id="t-ev", message="polling failed", result=None)
    of_try_1 = TaskEvent.from_payload(ended.model_copy(update={"try_number": 1}).to_payload())
    older = TaskEvent.from_payload(ended.to_payload())  # a payload from before try_number existed

    assert "try_number" not in ended.to_payload()
    assert of_try_1.from_earlier_try({"ti": _Ti(2)})
    assert not of_try_1.from_earlier_try({"ti": _Ti(1)})
    assert not older.from_earlier_try({"ti": _Ti(2)})  # unknown: taken as this try's, as before
    assert not of_try_1.from_earlier_try({})  # outside a task run
    assert not of_try_1.from_earlier_try({"ti": _Ti(True)})
