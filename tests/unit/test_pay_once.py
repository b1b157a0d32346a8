"""The pay-once record, its store in task_state_store, and the rule that resumes or submits (real local HTTP)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from airflow.sdk import ObjectStoragePath
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.apis.base import Submission
from airflow_provider_genmedia.exceptions import GenMediaServerError, GenMediaValidationError
from airflow_provider_genmedia.hooks.genmedia import client_for
from airflow_provider_genmedia.pay_once import (
    RECORD_VERSION,
    STATE_KEY,
    ObjectStorageRecordStore,
    PayOnce,
    SubmitRecord,
    TaskStateRecordStore,
    record_folder,
    record_store,
    request_fingerprint,
)
from tests.unit.operators.state import StateStore, submit_as_operator
from tests.unit.triggers.vendor import novita_task, use_connection

PATH = "/v3/async/wan-t2v"
BODY = {"prompt": "a boat at dawn", "width": 832, "height": 480}
GATEWAY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def submission(body: dict[str, Any] = BODY) -> Submission:
    return get_api("novita").prepare(body, PATH)


class Submits:
    """The submit route: answers in turn (the last repeats), counting each POST."""

    def __init__(self, *answers: Response) -> None:
        self.answers = answers
        self.count = 0

    def __call__(self, request: Request) -> Response:
        self.count += 1
        return self.answers[min(self.count, len(self.answers)) - 1]


def accepted(task_id: str) -> Response:
    return Response(json.dumps({"task_id": task_id}), content_type="application/json")


def serve(server: HTTPServer, submits: Submits, task_id: str, status: str = "TASK_STATUS_SUCCEED") -> None:
    server.expect_request(PATH, method="POST").respond_with_handler(submits)
    server.expect_request("/v3/async/task-result", query_string={"task_id": task_id}).respond_with_json(
        novita_task(task_id, status, images=1)
    )


@pytest.fixture
def pay_once(novita: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> PayOnce:
    use_connection(monkeypatch, "novita", novita, max_retries=0)
    return PayOnce(client_for(get_api("novita")), TaskStateRecordStore(StateStore()), "fail")


def test_request_fingerprint_ignores_key_order() -> None:
    assert request_fingerprint({"a": 1, "b": [1, 2]}) == request_fingerprint({"b": [1, 2], "a": 1})
    assert request_fingerprint({"a": 1}) != request_fingerprint({"a": 2})


def test_a_record_written_before_records_had_a_version_still_reads() -> None:
    """The dict that the provider wrote to task_state_store before the record was a model."""
    store = StateStore()
    written_before = {
        "api": "novita",
        "task_id": "wan-1",
        "fingerprint": request_fingerprint(BODY),
        "attempted_at": "2026-11-02T10:15:00+00:00",
        "request": BODY,
    }
    store.set(STATE_KEY, written_before)

    record = TaskStateRecordStore(store).get()

    assert record is not None
    assert record.version == RECORD_VERSION
    assert (record.api, record.task_id, record.fingerprint, record.request) == (
        "novita",
        "wan-1",
        request_fingerprint(BODY),
        BODY,
    )
    assert record.attempted_at == datetime(2026, 11, 2, 10, 15, tzinfo=UTC)
    assert record.sent_at == "2026-11-02T10:15:00Z"


def test_the_record_round_trips_as_json_with_its_version_and_blobs_elided() -> None:
    store = StateStore()
    records = TaskStateRecordStore(store)
    blob = "QUJD" * 300
    attempt = SubmitRecord.attempt(get_api("novita").prepare({"prompt": "x", "image": blob}, PATH))

    records.record_attempt(attempt)
    answered = records.record_task_id(attempt, "wan-9")

    stored = store.get(STATE_KEY)
    assert stored["version"] == RECORD_VERSION
    assert stored["task_id"] == "wan-9"
    assert stored["request"]["image"] == f"<base64: {len(blob)} chars elided>"
    assert stored["fingerprint"] == request_fingerprint({"prompt": "x", "image": blob})
    assert records.get() == answered
    records.forget()
    assert records.get() is None


@pytest.mark.parametrize(
    "value",
    [{"api": "novita"}, "not a record", {**SubmitRecord(api="novita", fingerprint="f").model_dump(), "version": 99}],
    ids=["incomplete", "not-an-object", "newer-version"],
)
def test_an_unreadable_record_counts_as_none(value: Any) -> None:
    store = StateStore()
    store.set(STATE_KEY, value if not isinstance(value, dict) else json.loads(json.dumps(value, default=str)))
    assert TaskStateRecordStore(store).get() is None


@dataclass(frozen=True)
class TaskInstance:
    """The identity of a task instance, as the worker's ``ti`` carries it."""

    dag_id: str = "nightly"
    run_id: str = "manual__2026-11-30T02:00:00+00:00"
    task_id: str = "restyle"
    map_index: int = -1


def test_with_a_state_store_the_record_lives_there() -> None:
    assert isinstance(record_store({"task_state_store": StateStore(), "ti": TaskInstance()}), TaskStateRecordStore)


def test_without_a_state_store_each_task_instance_has_a_file_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__GENMEDIA__SUBMIT_RECORD_PATH", f"file://{tmp_path}/records")
    first = record_store({"ti": TaskInstance(map_index=0)})
    second = record_store({"ti": TaskInstance(map_index=1)})
    assert isinstance(first, ObjectStorageRecordStore)
    assert isinstance(second, ObjectStorageRecordStore)
    assert first.path.path == f"{tmp_path}/records/nightly/manual__2026-11-30T02%3A00%3A00%2B00%3A00/restyle/0.json"

    first.record_attempt(SubmitRecord(api="novita", fingerprint="f", task_id="t-0"))

    assert second.get() is None
    again = record_store({"ti": TaskInstance(map_index=0)}).get()
    assert again is not None
    assert again.task_id == "t-0"
    assert [path.name for path in (tmp_path / "records").rglob("*") if path.is_file()] == ["0.json"]


def test_a_file_record_round_trips_and_still_reads_the_old_dict(tmp_path: Path) -> None:
    records = ObjectStorageRecordStore(ObjectStoragePath(f"file://{tmp_path}/a/b.json"))
    assert records.get() is None
    attempt = SubmitRecord.attempt(submission())
    records.record_attempt(attempt)
    assert records.get() == attempt
    assert records.record_task_id(attempt, "wan-3") == records.get()

    (tmp_path / "a" / "b.json").write_text(
        json.dumps(
            {
                "api": "novita",
                "task_id": "wan-1",
                "fingerprint": "f",
                "attempted_at": "2026-11-02T10:15:00+00:00",
                "request": None,
            }
        )
    )
    old = records.get()
    assert old is not None
    assert (old.task_id, old.version) == ("wan-1", RECORD_VERSION)

    (tmp_path / "a" / "b.json").write_text("{not json")
    assert records.get() is None
    records.forget()
    assert not (tmp_path / "a" / "b.json").exists()
    records.forget()


def test_a_record_that_cannot_be_written_stops_the_submit_naming_the_option(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    records = ObjectStorageRecordStore(ObjectStoragePath(f"file://{tmp_path}/blocker/run/task.json"))
    with pytest.raises(GenMediaValidationError, match=r"^\[genmedia\] submit_record_path: cannot keep"):
        records.record_attempt(SubmitRecord(api="novita", fingerprint="f"))


def test_the_default_folder_is_under_airflow_home_for_the_local_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__GENMEDIA__SUBMIT_RECORD_PATH", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    assert str(record_folder()) == f"file://{tmp_path}/genmedia/submit-records"


@pytest.mark.parametrize("executor", ["CeleryExecutor", "LocalExecutor,KubernetesExecutor"])
def test_a_distributed_executor_must_name_shared_storage(monkeypatch: pytest.MonkeyPatch, executor: str) -> None:
    monkeypatch.delenv("AIRFLOW__GENMEDIA__SUBMIT_RECORD_PATH", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    with pytest.raises(GenMediaValidationError, match="AIRFLOW__GENMEDIA__SUBMIT_RECORD_PATH") as raised:
        record_folder()
    assert "nothing was sent" in str(raised.value)
    monkeypatch.setenv("AIRFLOW__GENMEDIA__SUBMIT_RECORD_PATH", "s3://shared/records")
    monkeypatch.setenv("AIRFLOW__GENMEDIA__SUBMIT_RECORD_CONN_ID", "records_s3")
    folder = record_folder()
    assert folder == ObjectStoragePath("s3://shared/records", conn_id="records_s3")
    # Airflow 3.0's ObjectStoragePath keeps the connection in its storage options, later ones in an attribute.
    assert (getattr(folder, "conn_id", None) or folder.storage_options.get("conn_id")) == "records_s3"


def test_a_submit_records_the_attempt_then_the_task_id(pay_once: PayOnce, novita: HTTPServer) -> None:
    submits = Submits(accepted("wan-1"))
    serve(novita, submits, "wan-1")

    assert submit_as_operator(pay_once, submission()) == ("wan-1", None)

    record = pay_once.records.get()
    assert record is not None
    assert (record.api, record.task_id, record.fingerprint) == ("novita", "wan-1", request_fingerprint(BODY))
    assert submits.count == 1


def test_a_recorded_task_is_resumed_without_a_second_submit(pay_once: PayOnce, novita: HTTPServer) -> None:
    submits = Submits(accepted("wan-1"))
    serve(novita, submits, "wan-1")
    submit_as_operator(pay_once, submission())

    task_id, result = submit_as_operator(pay_once, submission())

    assert task_id == "wan-1"
    assert result is not None
    assert result.status == "succeeded"
    assert submits.count == 1


def test_a_changed_request_submits_anew(pay_once: PayOnce, novita: HTTPServer) -> None:
    submits = Submits(accepted("wan-1"), accepted("wan-2"))
    serve(novita, submits, "wan-1")
    submit_as_operator(pay_once, submission())

    task_id, _ = submit_as_operator(pay_once, submission({**BODY, "prompt": "a boat at dusk"}))

    assert task_id == "wan-2"
    assert submits.count == 2


def test_a_recorded_task_that_failed_is_paid_for_again(pay_once: PayOnce, novita: HTTPServer) -> None:
    submits = Submits(accepted("wan-1"), accepted("wan-2"))
    serve(novita, submits, "wan-1", status="TASK_STATUS_FAILED")
    submit_as_operator(pay_once, submission())

    assert submit_as_operator(pay_once, submission())[0] == "wan-2"
    assert submits.count == 2


def test_the_vendors_refusal_forgets_the_attempt(pay_once: PayOnce, novita: HTTPServer) -> None:
    refusal = {"code": 500, "reason": "CREATE_TASK_FAILED", "message": "Internal server error"}
    serve(novita, Submits(Response(json.dumps(refusal), 500, content_type="application/json")), "wan-1")

    with pytest.raises(GenMediaServerError):
        submit_as_operator(pay_once, submission())

    assert pay_once.records.get() is None


@pytest.mark.parametrize("policy", ["fail", "resubmit"])
def test_an_unanswered_submit_is_never_paid_for_twice_unless_asked(
    pay_once: PayOnce, novita: HTTPServer, policy: str
) -> None:
    submits = Submits(Response(GATEWAY_PAGE, 502, content_type="text/html"), accepted("wan-1"))
    serve(novita, submits, "wan-1")
    pay_once.on_uncertain_submit = policy  # type: ignore[assignment]

    with pytest.raises(AirflowException) as first:
        submit_as_operator(pay_once, submission())
    record = pay_once.records.get()
    assert record is not None
    assert record.task_id is None
    assert record.sent_at in str(first.value)
    assert "may have created a billed job" in str(first.value)

    if policy == "fail":
        assert isinstance(first.value, AirflowFailException)
        with pytest.raises(AirflowFailException, match="an earlier try sent it"):
            submit_as_operator(pay_once, submission())
        assert submits.count == 1
    else:
        assert not isinstance(first.value, AirflowFailException)
        assert submit_as_operator(pay_once, submission())[0] == "wan-1"
        assert submits.count == 2
