"""One rule for whether a submit made a job, and the daily budget around every submit, over real local HTTP: the
pay-once record and the budget's units are given back only when the vendor's answer proved that no job was made."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.apis.base import Submission
from airflow_provider_genmedia.budgets import SpendLedger
from airflow_provider_genmedia.exceptions import GenMediaServerError
from airflow_provider_genmedia.hooks.genmedia import NovitaHook, client_for
from airflow_provider_genmedia.pay_once import PayOnce, SubmitRecord, TaskStateRecordStore
from tests.unit.operators.state import StateStore, submit_as_operator
from tests.unit.triggers.vendor import use_connection

NOVITA_PATH = "/v3/async/wan-t2v"
NOVITA_BODY = {"prompt": "a boat at dawn", "width": 832, "height": 480}
GATEWAY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


class Route:
    """A submit route answering the same answer to every POST, counting them."""

    def __init__(self, answer: Callable[[], Response]) -> None:
        self.answer = answer
        self.count = 0

    def __call__(self, request: Request) -> Response:
        self.count += 1
        return self.answer()


def json_answer(body: Any, status: int = 200) -> Callable[[], Response]:
    return lambda: Response(json.dumps(body), status, content_type="application/json")


def novita_submission(image_num: int | None = None) -> Submission:
    body = dict(NOVITA_BODY) if image_num is None else {**NOVITA_BODY, "image_num": image_num}
    return get_api("novita").prepare(body, NOVITA_PATH)


@pytest.fixture
def ledger_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIRFLOW__GENMEDIA__SPEND_LEDGER_PATH", f"file://{tmp_path}/ledger")
    return tmp_path / "ledger"


def jobs_today(conn_id: str = "novita_default") -> int:
    return SpendLedger.configured().used(conn_id, "jobs", datetime.now(UTC).date().isoformat())


def pay_once(api: str) -> PayOnce:
    return PayOnce(client_for(get_api(api)), TaskStateRecordStore(StateStore()), "fail")


# -- one rule: did the submit make a job? -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "path", "body"),
    [
        ("jimeng", "/task/jimeng/text2video", {"prompt": "dog"}),
        (
            "bailian",
            "/task/bailian/text2video",
            {
                "model": "wan2.6-t2v",
                "input": {"prompt": "a kitten"},
                "parameters": {"size": "1920*1080", "duration": 5},
            },
        ),
    ],
)
def test_a_success_envelope_without_a_task_is_uncertain_and_the_retry_does_not_pay_again(
    vendor: HTTPServer, monkeypatch: pytest.MonkeyPatch, api: str, path: str, body: dict[str, Any]
) -> None:
    use_connection(monkeypatch, "gptge", vendor, max_retries=2)
    route = Route(json_answer({"code": 0, "data": {}}))
    vendor.expect_request(path, method="POST").respond_with_handler(route)
    guard = pay_once(api)
    submission = get_api(api).prepare(body, path)

    with pytest.raises(AirflowFailException, match="may have created a billed job"):
        submit_as_operator(guard, submission)
    record = guard.records.get()
    assert record is not None
    assert record.task_id is None

    with pytest.raises(AirflowFailException, match="an earlier try sent it"):
        submit_as_operator(guard, submission)
    assert route.count == 1


class FailingAfterTheAnswer(TaskStateRecordStore):
    """A record store whose write of the vendor's task id fails (storage gone after the vendor answered)."""

    def record_task_id(self, record: SubmitRecord, task_id: str) -> SubmitRecord:
        raise OSError("the record store went away")


def test_an_exception_after_a_200_answer_keeps_the_record_and_the_retry_does_not_pay_again(
    vendor: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, "novita", vendor, max_retries=0)
    route = Route(json_answer({"task_id": "wan-1"}))
    vendor.expect_request(NOVITA_PATH, method="POST").respond_with_handler(route)
    state = StateStore()

    with pytest.raises(OSError, match="went away"):
        submit_as_operator(
            PayOnce(client_for(get_api("novita")), FailingAfterTheAnswer(state), "fail"), novita_submission()
        )
    with pytest.raises(AirflowFailException, match="an earlier try sent it"):
        submit_as_operator(
            PayOnce(client_for(get_api("novita")), TaskStateRecordStore(state), "fail"), novita_submission()
        )
    assert route.count == 1


def test_an_answer_that_breaks_the_parser_is_uncertain(vendor: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(monkeypatch, "gptge", vendor, max_retries=2)
    route = Route(json_answer(["not", "an", "object"]))
    vendor.expect_request("/avatar/generation", method="POST").respond_with_handler(route)
    body = {"avatar_url": "https://example.com/face.png", "audio_url": "https://example.com/a.mp3"}
    guard = pay_once("avatar")

    with pytest.raises(AirflowFailException, match="may have created a billed job"):
        submit_as_operator(guard, get_api("avatar").prepare(body, "/avatar/generation"))
    assert guard.records.get() is not None
    assert route.count == 1


# -- the daily budget around every submit ---------------------------------------------------------------


def test_a_submit_over_budget_sends_nothing_and_fails_without_retry(
    vendor: HTTPServer, monkeypatch: pytest.MonkeyPatch, ledger_root: Path
) -> None:
    use_connection(monkeypatch, "novita", vendor, max_retries=0, max_jobs_per_day=2)
    route = Route(json_answer({"task_id": "wan-1"}))
    vendor.expect_request(NOVITA_PATH, method="POST").respond_with_handler(route)

    for _ in range(2):
        assert submit_as_operator(pay_once("novita"), novita_submission())[0] == "wan-1"
    guard = pay_once("novita")
    with pytest.raises(AirflowFailException, match=r"max_jobs_per_day=2, and 2 jobs were already counted") as refused:
        submit_as_operator(guard, novita_submission())

    assert route.count == 2
    assert guard.records.get() is None
    assert "raise the extra max_jobs_per_day of connection 'novita_default'" in str(refused.value)


def test_the_outputs_a_request_asks_for_count_against_the_output_budget(
    vendor: HTTPServer, monkeypatch: pytest.MonkeyPatch, ledger_root: Path
) -> None:
    use_connection(monkeypatch, "novita", vendor, max_retries=0, max_outputs_per_day="6")
    route = Route(json_answer({"task_id": "wan-1"}))
    vendor.expect_request(NOVITA_PATH, method="POST").respond_with_handler(route)

    submit_as_operator(pay_once("novita"), novita_submission(image_num=4))
    with pytest.raises(AirflowFailException, match="this submit asks for 4"):
        submit_as_operator(pay_once("novita"), novita_submission(image_num=4))
    submit_as_operator(pay_once("novita"), novita_submission(image_num=2))

    assert route.count == 2


def test_a_proven_refusal_gives_its_unit_back(
    vendor: HTTPServer, monkeypatch: pytest.MonkeyPatch, ledger_root: Path
) -> None:
    use_connection(monkeypatch, "novita", vendor, max_retries=0, max_jobs_per_day=1)
    refusal = {"code": 500, "reason": "CREATE_TASK_FAILED", "message": "Internal server error"}
    route = Route(json_answer(refusal, 500))
    vendor.expect_request(NOVITA_PATH, method="POST").respond_with_handler(route)

    for _ in range(3):
        with pytest.raises(GenMediaServerError):
            submit_as_operator(pay_once("novita"), novita_submission())

    assert route.count == 3
    assert jobs_today() == 0


def test_an_uncertain_submit_keeps_its_unit(
    vendor: HTTPServer, monkeypatch: pytest.MonkeyPatch, ledger_root: Path
) -> None:
    use_connection(monkeypatch, "novita", vendor, max_retries=0, max_jobs_per_day=1)
    route = Route(lambda: Response(GATEWAY_PAGE, 502, content_type="text/html"))
    vendor.expect_request(NOVITA_PATH, method="POST").respond_with_handler(route)

    with pytest.raises(AirflowFailException, match="may have created a billed job"):
        submit_as_operator(pay_once("novita"), novita_submission())
    with pytest.raises(AirflowFailException, match="max_jobs_per_day=1"):
        submit_as_operator(pay_once("novita"), novita_submission())

    assert route.count == 1
    assert jobs_today() == 1


def test_a_resumed_job_never_counts_twice(
    vendor: HTTPServer, monkeypatch: pytest.MonkeyPatch, ledger_root: Path
) -> None:
    use_connection(monkeypatch, "novita", vendor, max_retries=0, max_jobs_per_day=1)
    route = Route(json_answer({"task_id": "wan-1"}))
    vendor.expect_request(NOVITA_PATH, method="POST").respond_with_handler(route)
    vendor.expect_request("/v3/async/task-result").respond_with_json(
        {"task": {"task_id": "wan-1", "status": "TASK_STATUS_PROCESSING"}, "images": [], "videos": []}
    )
    guard = pay_once("novita")

    submit_as_operator(guard, novita_submission())
    task_id, resumed = submit_as_operator(guard, novita_submission())

    assert (task_id, resumed is not None) == ("wan-1", True)
    assert route.count == 1
    assert jobs_today() == 1


@pytest.mark.parametrize("extra", [{"max_jobs_per_day": -1}, {"max_outputs_per_day": "many"}])
def test_a_bad_budget_extra_is_an_error_naming_it(
    vendor: HTTPServer, monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any]
) -> None:
    use_connection(monkeypatch, "novita", vendor, **extra)
    with pytest.raises(ValueError, match=f"^{next(iter(extra))}: must be a whole number"):
        NovitaHook().settings()
