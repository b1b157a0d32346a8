"""Paying once: what a submit records in task_state_store, and what a later try does with it (real local HTTP)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airflow_provider_genmedia.exceptions import GenMediaServerError
from airflow_provider_genmedia.operators.novita import NovitaTaskOperator
from airflow_provider_genmedia.pay_once import STATE_KEY
from tests.unit.operators.state import StateStore
from tests.unit.triggers.vendor import API_KEY, novita_task

SUBMIT = "/v3/async/wan-t2v"
BODY = {"prompt": "a boat at dawn", "width": 832, "height": 480}
GATEWAY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


class TaskInstance:
    """The ``ti`` of the context: its identity and what the operator pushes."""

    dag_id, run_id, task_id, map_index = "nightly", "manual__2026-11-30T02:00:00+00:00", "generate", -1

    def __init__(self, try_number: int = 1) -> None:
        self.try_number = try_number
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class Submits:
    """The submit route: answers in turn (the last repeats), counting each POST that arrived."""

    def __init__(self, *answers: Response | float) -> None:
        self.answers = answers
        self.count = 0

    def __call__(self, request: Request) -> Response:
        self.count += 1
        answer = self.answers[min(self.count, len(self.answers)) - 1]
        if isinstance(answer, float):  # no answer within the client's timeout
            time.sleep(answer)  # the behaviour under test: a scripted server that answers past the client's timeout
            return Response(json.dumps({"task_id": "too-late"}), content_type="application/json")
        return answer


def accepted(task_id: str) -> Response:
    return Response(json.dumps({"task_id": task_id}), content_type="application/json")


def use_novita(server: HTTPServer, monkeypatch: pytest.MonkeyPatch, timeout: float) -> None:
    """Point ``novita_default`` at the module's server, with a ``timeout`` s read timeout and no hook retries."""
    conn = {"conn_type": "novita", "host": server.url_for("/"), "password": API_KEY}
    conn["extra"] = {"max_retries": 0, "timeout": timeout}
    monkeypatch.setenv("AIRFLOW_CONN_NOVITA_DEFAULT", json.dumps(conn))


@pytest.fixture
def vendor(server: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HTTPServer]:
    """The module's local server as Novita, with a read timeout long enough for a busy machine."""
    use_novita(server, monkeypatch, timeout=30)
    yield server
    server.clear()


def serve(server: HTTPServer, submits: Submits, task_id: str = "wan-1") -> None:
    server.expect_request(SUBMIT, method="POST").respond_with_handler(submits)
    server.expect_request("/v3/async/task-result", query_string={"task_id": task_id}).respond_with_json(
        novita_task(task_id, "TASK_STATUS_SUCCEED", images=1)
    )


def run_try(store: StateStore, **arguments: Any) -> dict[str, Any]:
    operator = NovitaTaskOperator(
        task_id="generate", endpoint="wan-t2v", body=BODY, deferrable=False, poll_interval=0.05, **arguments
    )
    return operator.execute({"task_state_store": store, "ti": TaskInstance()})  # type: ignore[arg-type]


def test_a_gateway_502_fails_without_retry_and_a_later_try_sends_nothing(vendor: HTTPServer) -> None:
    submits = Submits(Response(GATEWAY_PAGE, 502, content_type="text/html"))
    serve(vendor, submits)
    store = StateStore()

    with pytest.raises(AirflowFailException) as first:
        run_try(store)
    with pytest.raises(AirflowFailException) as second:
        run_try(store)

    assert submits.count == 1
    attempt = store.get(STATE_KEY)
    assert attempt["task_id"] is None
    assert attempt["attempted_at"] in str(first.value)
    for raised in (first.value, second.value):
        assert "may have created a billed job" in str(raised)
        assert "novita console" in str(raised)
        assert "on_uncertain_submit='resubmit'" in str(raised)
    assert "HTTP 502" in str(first.value)


def test_no_answer_within_the_timeout_is_uncertain_too(vendor: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    use_novita(vendor, monkeypatch, timeout=0.2)
    submits = Submits(3.0)
    serve(vendor, submits)

    with pytest.raises(AirflowFailException, match="timed out"):
        run_try(StateStore())

    assert submits.count == 1


def test_an_unreadable_answer_is_uncertain(vendor: HTTPServer) -> None:
    submits = Submits(Response(json.dumps({"code": 0, "data": {}}), content_type="application/json"))
    serve(vendor, submits)

    with pytest.raises(AirflowFailException, match="could not be read"):
        run_try(StateStore())

    assert submits.count == 1


def test_resubmit_lets_the_next_try_pay_again_once(vendor: HTTPServer) -> None:
    submits = Submits(Response(GATEWAY_PAGE, 502, content_type="text/html"), accepted("wan-1"))
    serve(vendor, submits)
    store = StateStore()

    with pytest.raises(AirflowException) as first:
        run_try(store, on_uncertain_submit="resubmit")
    result = run_try(store, on_uncertain_submit="resubmit")

    assert not isinstance(first.value, AirflowFailException)
    assert "A retry submits again" in str(first.value)
    assert submits.count == 2
    assert result["task_id"] == "wan-1"
    assert result["status"] == "succeeded"
    assert store.get(STATE_KEY)["task_id"] == "wan-1"


def test_the_vendors_own_error_proves_no_job_was_made_so_a_retry_submits(vendor: HTTPServer) -> None:
    refusal = {"code": 500, "reason": "CREATE_TASK_FAILED", "message": "Internal server error", "metadata": {}}
    submits = Submits(Response(json.dumps(refusal), 500, content_type="application/json"), accepted("wan-1"))
    serve(vendor, submits)
    store = StateStore()

    with pytest.raises(GenMediaServerError):
        run_try(store)
    assert store.get(STATE_KEY) is None
    result = run_try(store)

    assert submits.count == 2
    assert result["status"] == "succeeded"


def test_a_stored_task_is_resumed_and_never_submitted_again(vendor: HTTPServer) -> None:
    submits = Submits(accepted("wan-1"))
    serve(vendor, submits)
    store = StateStore()

    first = run_try(store)
    second = run_try(store)

    assert submits.count == 1
    assert first["task_id"] == second["task_id"] == "wan-1"


def test_on_uncertain_submit_takes_only_its_two_choices() -> None:
    with pytest.raises(ValueError, match="on_uncertain_submit"):
        NovitaTaskOperator(task_id="t", endpoint="wan-t2v", body=BODY, on_uncertain_submit="retry")  # type: ignore[arg-type]


def test_without_task_state_store_the_record_file_makes_a_later_try_resume(
    vendor: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow < 3.3 hands the operator no task_state_store: the record lives in a file every try reads."""
    monkeypatch.setenv("AIRFLOW__GENMEDIA__SUBMIT_RECORD_PATH", f"file://{tmp_path}")
    submits = Submits(accepted("wan-1"))
    serve(vendor, submits)

    def run_without_state_store() -> dict[str, Any]:
        operator = NovitaTaskOperator(
            task_id="generate", endpoint="wan-t2v", body=BODY, deferrable=False, poll_interval=0.05
        )
        return operator.execute({"ti": TaskInstance()})  # type: ignore[arg-type]

    first = run_without_state_store()
    second = run_without_state_store()

    assert submits.count == 1
    assert first["task_id"] == second["task_id"] == "wan-1"
    (record,) = [path for path in tmp_path.rglob("*.json")]
    assert json.loads(record.read_text())["task_id"] == "wan-1"


def test_without_task_state_store_an_uncertain_submit_is_remembered_too(
    vendor: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__GENMEDIA__SUBMIT_RECORD_PATH", f"file://{tmp_path}")
    submits = Submits(Response(GATEWAY_PAGE, 502, content_type="text/html"))
    serve(vendor, submits)
    operator = NovitaTaskOperator(task_id="generate", endpoint="wan-t2v", body=BODY, deferrable=False)

    for _ in range(2):
        with pytest.raises(AirflowFailException, match="may have created a billed job"):
            operator.execute({"ti": TaskInstance()})  # type: ignore[arg-type]

    assert submits.count == 1
