"""A deferred job against a real local vendor: what the operator hands its trigger, and how the trigger ends it.

The trigger ends a succeeded job in the triggerer once it wrote the XComs the worker would have pushed (through the
Task SDK's channel to its supervisor, recorded here); every other end resumes the operator on a worker, with a short
payload.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent
from pytest_httpserver import HTTPServer

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.events import TaskEvent
from airflow_provider_genmedia.links import FirstOutputLink
from airflow_provider_genmedia.operators.novita import NovitaTaskOperator
from airflow_provider_genmedia.operators.video import AvatarVideoOperator
from airflow_provider_genmedia.results import elide_blobs
from airflow_provider_genmedia.triggers.task import GenMediaTaskTrigger
from tests.unit.operators.state import StateStore
from tests.unit.operators.test_submit import Submits, TaskInstance, accepted
from tests.unit.triggers.supervisor import Supervisor, bind
from tests.unit.triggers.vendor import Answer, novita_route, novita_task, use_connection

SUBMIT = "/v3/async/wan-t2v"
BODY = {"prompt": "a boat at dawn", "width": 832, "height": 480, "image_url": "data:image/png;base64," + "A" * 400}


def events_of(trigger: GenMediaTaskTrigger) -> list[TriggerEvent]:
    """Run the trigger to its end, bound to a task instance, as the triggerer would."""
    bind(trigger)

    async def collect() -> list[TriggerEvent]:
        return [event async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), 10))


def deferred_trigger(operator: Any, ti: TaskInstance | None = None) -> GenMediaTaskTrigger:
    """Execute the operator on a fresh context; return the trigger it deferred to."""
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"task_state_store": StateStore(), "ti": ti or TaskInstance()})
    assert deferred.value.method_name == "execute_complete"
    trigger = deferred.value.trigger
    assert isinstance(trigger, GenMediaTaskTrigger)
    return trigger


def without_expiry(result: dict[str, Any]) -> dict[str, Any]:
    """A result json without its links' expiry, which each poll computes from its own clock."""
    outputs = [{key: value for key, value in output.items() if key != "expires_at"} for output in result["outputs"]]
    return result | {"outputs": outputs}


def wan(**arguments: Any) -> NovitaTaskOperator:
    return NovitaTaskOperator(task_id="generate", endpoint="wan-t2v", body=BODY, poll_interval=0.05, **arguments)


def test_a_deferred_job_ends_in_the_triggerer_with_what_the_worker_returns(
    novita: HTTPServer, supervisor: Supervisor
) -> None:
    novita.expect_request(SUBMIT, method="POST").respond_with_json({"task_id": "wan-1"})
    status = novita_route(novita, "wan-1", Answer(novita_task("wan-1", "TASK_STATUS_SUCCEED", images=1)))
    ti = TaskInstance()

    before = time.time()
    trigger = deferred_trigger(wan(deferrable=True), ti)

    _, kwargs = trigger.serialize()
    assert status.calls == []  # a task just submitted is not read before the wait
    assert ti.xcom == {"genmedia_task_id": "wan-1"}
    assert (kwargs["genmedia_task_id"], kwargs["end_task"]) == ("wan-1", True)
    assert kwargs["request"] == elide_blobs(BODY) != BODY  # what completion needs, without the image
    assert before <= kwargs["submitted_at"] <= time.time()
    assert "AAAA" not in json.dumps(kwargs)

    (event,) = events_of(trigger)
    on_worker = wan(deferrable=False).execute({"task_state_store": StateStore(), "ti": TaskInstance()})

    assert isinstance(event, TaskSuccessEvent)
    # The result goes to the supervisor, as a worker writes it (Airflow would store the event's JSON-encoded once
    # more); the event carries only the link, which the API server decodes either way.
    assert set(supervisor.xcoms) == {"return_value"}
    result = supervisor.xcoms["return_value"]
    assert isinstance(result, dict)
    assert without_expiry(result) == without_expiry(on_worker)
    assert (result["prompt"], result["request"]) == ("a boat at dawn", elide_blobs(BODY))
    assert event.xcoms == {"_link_FirstOutputLink": result["outputs"][0]["url"]}


def test_a_deferral_pushes_no_link_and_without_do_xcom_push_the_triggerer_writes_no_result(
    novita: HTTPServer, supervisor: Supervisor
) -> None:
    novita.expect_request(SUBMIT, method="POST").respond_with_json({"task_id": "wan-5"})
    novita_route(novita, "wan-5", Answer(novita_task("wan-5", "TASK_STATUS_SUCCEED", images=1)))
    operator = wan(deferrable=True, do_xcom_push=False)

    trigger = deferred_trigger(operator)
    (event,) = events_of(trigger)

    # The task runner pushes the links of the deferring instance (none); its class, which the DAG serializes, keeps
    # them for the UI.
    assert list(operator.operator_extra_links) == []
    assert [type(link) for link in NovitaTaskOperator.operator_extra_links] == [FirstOutputLink]
    assert trigger.serialize()[1]["push_result"] is False
    assert isinstance(event, TaskSuccessEvent)
    assert supervisor.xcoms == {}


def test_when_the_xcoms_cannot_be_written_the_success_resumes_on_a_worker(
    novita: HTTPServer, supervisor: Supervisor
) -> None:
    novita.expect_request(SUBMIT, method="POST").respond_with_json({"task_id": "wan-3"})
    novita_route(novita, "wan-3", Answer(novita_task("wan-3", "TASK_STATUS_SUCCEED", images=1)))
    supervisor.refuse = True
    operator = wan(deferrable=True)

    (event,) = events_of(deferred_trigger(operator))

    assert not isinstance(event, TaskSuccessEvent)
    returned = operator.execute_complete({}, event.payload)
    assert (returned["status"], returned["prompt"]) == ("succeeded", "a boat at dawn")
    assert operator.generation_result == returned


def test_a_vendor_failure_resumes_on_the_worker_and_fails_without_retry(novita: HTTPServer) -> None:
    novita.expect_request(SUBMIT, method="POST").respond_with_json({"task_id": "wan-2"})
    reason = "prompt rejected by the content policy"
    novita_route(novita, "wan-2", Answer(novita_task("wan-2", "TASK_STATUS_FAILED", reason=reason)))
    operator = wan(deferrable=True)

    (event,) = events_of(deferred_trigger(operator))

    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload["status"] == "failed"
    assert event.payload["result"] is None  # how it ended is in the message; Airflow logs the payload
    assert reason in event.payload["message"]
    with pytest.raises(AirflowFailException, match=f"wan-2 failed: {reason}"):
        operator.execute_complete({}, event.payload)
    assert operator.generation_result is None


def test_a_trigger_without_end_task_resumes_a_success_on_the_worker(novita: HTTPServer, supervisor: Supervisor) -> None:
    # A user's own operator deferring to the trigger expects its method to run.
    novita_route(novita, "t-own", Answer(novita_task("t-own", "TASK_STATUS_SUCCEED", images=2)))

    (event,) = events_of(GenMediaTaskTrigger("novita", "t-own", "novita_default", poll_interval=0.05))

    assert not isinstance(event, TaskSuccessEvent)
    assert supervisor.xcoms == {}
    assert (event.payload["status"], len(event.payload["result"]["outputs"])) == ("succeeded", 2)
    assert event.payload["result"]["prompt"] is None  # not completed: no request was given


AVATAR_DONE: dict[str, Any] = {
    "id": "67930a6f8d5ac20007a77b1c",
    "web_work_status": 200,
    "work_video_path": "https://cdn.example.com/plain.mp4",
    "wm_work_video_path": "https://cdn.example.com/marked.mp4",
    "no_wm_work_video_path": "https://cdn.example.com/clean.mp4",
}


@pytest.mark.parametrize("wrapped", [False, True], ids=["flat", "data-wrapped"])
@pytest.mark.parametrize(
    ("no_watermark", "expected"),
    [(True, "https://cdn.example.com/clean.mp4"), (False, "https://cdn.example.com/plain.mp4")],
)
def test_the_triggerer_picks_the_avatar_video_the_request_asked_for(
    monkeypatch: pytest.MonkeyPatch,
    vendor: HTTPServer,
    supervisor: Supervisor,
    no_watermark: bool,
    expected: str,
    wrapped: bool,
) -> None:
    use_connection(monkeypatch, "gptge", vendor)
    vendor.expect_request("/avatar/generation", method="POST").respond_with_json({"code": 0, "data": {"id": "av-1"}})
    done = {**AVATAR_DONE, "id": "av-1"}
    vendor.expect_request("/avatar/task/av-1").respond_with_json({"code": 0, "data": done} if wrapped else done)
    operator = AvatarVideoOperator(
        task_id="t",
        avatar_url="https://example.com/face.png",
        audio_url="https://example.com/hello.mp3",
        no_watermark=no_watermark,
        deferrable=True,
        poll_interval=0.05,
    )

    (event,) = events_of(deferred_trigger(operator))

    assert isinstance(event, TaskSuccessEvent)
    result = supervisor.xcoms["return_value"]
    assert [(output["url"], output["kind"]) for output in result["outputs"]] == [(expected, "video")]


def test_an_avatar_task_without_the_clean_video_keeps_the_one_it_gave() -> None:
    done = {key: value for key, value in AVATAR_DONE.items() if key != "no_wm_work_video_path"}
    api = get_api("avatar")
    completed = api.complete(api.parse_result(done["id"], done), {"no_watermark": True})
    assert [output.url for output in completed.outputs] == [AVATAR_DONE["work_video_path"]]


def test_an_event_left_by_an_earlier_try_resumes_the_paid_task_and_waits_again(novita: HTTPServer) -> None:
    """Airflow 3.0 hands a retry the event of the try that failed: the retry must not fail with it, nor pay again."""
    submits = Submits(accepted("wan-4"))
    novita.expect_request(SUBMIT, method="POST").respond_with_handler(submits)
    status = novita_route(novita, "wan-4", Answer(novita_task("wan-4", "TASK_STATUS_PROCESSING", progress=30)))
    store = StateStore()
    with pytest.raises(TaskDeferred) as first:
        wan(deferrable=True).execute({"task_state_store": store, "ti": TaskInstance(try_number=1)})
    assert first.value.trigger.serialize()[1]["try_number"] == 1
    ended = TaskEvent(status="error", api="novita", task_id="wan-4", message="polling failed for 600 s", result=None)
    left_behind = ended.model_copy(update={"try_number": 1}).to_payload()

    with pytest.raises(AirflowException, match="polling failed for 600 s"):  # try 1 fails with its own event
        wan(deferrable=True).execute_complete(
            {"task_state_store": store, "ti": TaskInstance(try_number=1)}, left_behind
        )
    with pytest.raises(TaskDeferred) as again:  # try 2, resumed with try 1's event, starts afresh
        wan(deferrable=True).execute_complete(
            {"task_state_store": store, "ti": TaskInstance(try_number=2)}, left_behind
        )

    _, kwargs = again.value.trigger.serialize()
    assert (kwargs["genmedia_task_id"], kwargs["try_number"]) == ("wan-4", 2)
    assert submits.count == 1  # no new job
    assert len(status.calls) == 1  # the recorded task was read once, and found running
    with pytest.raises(AirflowException, match="polling failed"):  # an event that names no try is this try's
        wan(deferrable=True).execute_complete({"ti": TaskInstance(try_number=2)}, ended.to_payload())
