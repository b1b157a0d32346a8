"""Each fault switch of the emulator does what it says, over plain HTTP, and counts exactly."""

from __future__ import annotations

import time

import pytest
import requests

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.results import TaskStatus
from tests.emulator_fixtures import EmulatorControl, sample_body

ONE_PER_API = ["/v3/async/txt2img", "/task/jimeng/text2video", "/task/bailian/text2video", "/avatar/generation"]
NOVITA_TXT2IMG = "/v3/async/txt2img"


def submit_status(emulator: EmulatorControl, path: str = NOVITA_TXT2IMG) -> int:
    """POST the sample body of ``path`` and return the HTTP status."""
    return emulator.call("POST", path, json=sample_body(path)[1]).status_code


RATE_LIMITED = [
    (NOVITA_TXT2IMG, "RATE_LIMIT_EXCEEDED", "novita_retry_after"),
    ("/task/jimeng/text2video", "rate_limit_exceeded", "gptge_retry_after"),
]


@pytest.mark.parametrize(("path", "error_code", "header_setting"), RATE_LIMITED)
@pytest.mark.parametrize("with_header", [False, True], ids=["no-retry-after", "retry-after"])
def test_rate_limit_next_answers_429(
    emulator: EmulatorControl, path: str, error_code: str, header_setting: str, with_header: bool
) -> None:
    emulator.configure(rate_limit={"next": 2}, retry_after=3, **{header_setting: with_header})
    api, body = sample_body(path)

    limited = [emulator.call("POST", path, json=body) for _ in range(2)]
    passed = emulator.call("POST", path, json=body)

    assert [response.status_code for response in limited] == [429, 429]
    assert [response.headers.get("Retry-After") for response in limited] == ["3" if with_header else None] * 2
    assert get_api(api).parse_error(limited[0].json())[0] == error_code
    assert passed.status_code == 200
    stats = emulator.stats()
    assert stats["submits"][api] == 1
    assert stats["faults"]["rate_limit"] == 2


@pytest.mark.parametrize("path", [NOVITA_TXT2IMG, "/avatar/generation"])
def test_no_host_documents_retry_after_so_it_is_off_by_default(emulator: EmulatorControl, path: str) -> None:
    emulator.configure(rate_limit={"next": 1})
    response = emulator.call("POST", path, json=sample_body(path)[1])
    assert response.status_code == 429
    assert "Retry-After" not in response.headers


def test_rate_limit_every_nth_request(emulator: EmulatorControl) -> None:
    emulator.configure(rate_limit={"every": 3})
    statuses = [submit_status(emulator) for _ in range(7)]
    assert statuses == [200, 200, 429, 200, 200, 429, 200]


def test_a_seeded_rate_repeats_exactly(emulator: EmulatorControl) -> None:
    emulator.configure(rate_limit={"rate": 0.5}, random_seed=7)
    first = [submit_status(emulator) for _ in range(20)]
    emulator.configure(rate_limit={"rate": 0.5}, random_seed=7)
    second = [submit_status(emulator) for _ in range(20)]

    assert first == second
    assert set(first) == {200, 429}


def test_server_errors_take_the_configured_statuses_in_turn(emulator: EmulatorControl) -> None:
    emulator.configure(server_error={"every": 1})
    responses = [emulator.call("POST", NOVITA_TXT2IMG, json=sample_body(NOVITA_TXT2IMG)[1]) for _ in range(4)]

    assert [response.status_code for response in responses] == [500, 502, 503, 500]
    assert responses[0].json()["reason"] == "CREATE_TASK_FAILED"
    assert "502 Bad Gateway" in responses[1].text  # a proxy page, not JSON
    assert responses[2].headers["Content-Type"].startswith("text/html")
    stats = emulator.stats()
    assert stats["submits"]["novita"] == 0
    assert stats["faults"]["server_error"] == 4


def test_server_errors_hit_polls_too(emulator: EmulatorControl) -> None:
    task_id = emulator.submit("bailian", "/task/bailian/text2video", sample_body("/task/bailian/text2video")[1])
    emulator.configure(server_error={"next": 1}, server_error_statuses=[500])

    failed = emulator.poll("bailian", task_id)
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "get_result_failed"
    assert emulator.poll("bailian", task_id).status_code == 200
    assert emulator.stats()["polls"]["bailian"] == 1


def test_latency_delays_every_api_answer(emulator: EmulatorControl) -> None:
    emulator.configure(latency=0.3)
    started = time.monotonic()
    assert emulator.call("GET", "/task/unknown").status_code == 404
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("path", ONE_PER_API)
def test_the_fail_marker_fails_the_task_with_a_reason(emulator: EmulatorControl, path: str) -> None:
    emulator.configure(fail_reason="the model refused")
    api, body = sample_body(path, "please FAIL now")
    task_id = emulator.submit(api, path, body)
    response = emulator.wait(api, task_id)

    if api == "jimeng":  # a Volcengine risk verdict: HTTP 400 with code 50413
        assert (response.status_code, response.json()["code"], response.json()["data"]) == (400, 50413, None)
        result = get_api(api).task_failure(task_id, response.json())
    else:
        assert response.status_code == 200
        result = get_api(api).parse_result(task_id, response.json())
    assert result is not None
    assert result.status is TaskStatus.FAILED
    if api != "avatar":  # the avatar body has no reason field, only web_work_status -1
        assert "the model refused" in (result.reason or "")


def test_markers_are_whole_words(emulator: EmulatorControl) -> None:
    api, body = sample_body(NOVITA_TXT2IMG, "a waterfall at expiredate")
    assert emulator.result(api, emulator.submit(api, NOVITA_TXT2IMG, body)).status is TaskStatus.SUCCEEDED


def test_the_task_failure_rule_fails_tasks_without_a_marker(emulator: EmulatorControl) -> None:
    emulator.configure(task_failure={"every": 2})
    api, body = sample_body(NOVITA_TXT2IMG)
    statuses = [emulator.result(api, emulator.submit(api, NOVITA_TXT2IMG, body)).status for _ in range(4)]

    assert statuses == [TaskStatus.SUCCEEDED, TaskStatus.FAILED] * 2
    assert emulator.stats()["faults"]["task_failure"] == 2


@pytest.mark.parametrize(
    ("path", "http_status"),
    [
        (NOVITA_TXT2IMG, 404),
        ("/task/jimeng/text2video", 200),
        ("/task/bailian/text2video", 200),
        ("/avatar/generation", 404),
    ],
)
def test_the_expire_marker_expires_the_task(emulator: EmulatorControl, path: str, http_status: int) -> None:
    api, body = sample_body(path, "this will expire")
    task_id = emulator.submit(api, path, body)
    response = emulator.wait(api, task_id)

    assert response.status_code == http_status
    if http_status == 200:  # Jimeng data.status "expired", Bailian task_status "UNKNOWN"
        assert get_api(api).parse_result(task_id, response.json()).status is TaskStatus.EXPIRED
    else:  # Novita and the avatar API forget the task
        assert get_api(api).parse_error(response.json())[0] in ("TASK_NOT_FOUND", "task_not_found")


def test_the_task_expiry_rule(emulator: EmulatorControl) -> None:
    emulator.configure(task_expiry={"next": 1})
    api, body = sample_body("/task/bailian/text2video")
    first, second = (emulator.submit(api, "/task/bailian/text2video", body) for _ in range(2))

    assert emulator.result(api, first).status is TaskStatus.EXPIRED
    assert emulator.result(api, second).status is TaskStatus.SUCCEEDED


def test_a_dropped_download_cuts_the_file_short(emulator: EmulatorControl) -> None:
    api, body = sample_body("/task/jimeng/text2video")
    task_id = emulator.submit(api, "/task/jimeng/text2video", body)
    url = emulator.result(api, task_id).outputs[0].url
    emulator.configure(drop_download={"next": 1})

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=10)
    whole = requests.get(url, timeout=10)

    assert whole.status_code == 200
    assert len(whole.content) == int(whole.headers["Content-Length"])
    stats = emulator.stats()
    assert stats["faults"]["drop_download"] == 1
    assert stats["tasks"][task_id]["downloads"] == 2


def test_faults_never_touch_the_control_routes(emulator: EmulatorControl) -> None:
    emulator.configure(rate_limit={"every": 1}, server_error={"every": 1}, latency=0.5)
    started = time.monotonic()
    assert emulator.stats()["faults"]["rate_limit"] == 0
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("path", ONE_PER_API)
def test_a_cut_submit_creates_the_job_and_answers_nothing(emulator: EmulatorControl, path: str) -> None:
    emulator.configure(submit_cut={"next": 1})
    api, body = sample_body(path)

    with pytest.raises(requests.exceptions.ConnectionError):
        emulator.call("POST", path, json=body)
    answered = emulator.submit(api, path, body)

    stats = emulator.stats()
    assert stats["submits"][api] == 2
    assert stats["faults"]["submit_cut"] == 1
    (cut,) = set(stats["tasks"]) - {answered}
    assert emulator.result(api, cut).status is TaskStatus.SUCCEEDED  # the unanswered job is pollable and paid


def test_a_cut_submit_is_still_validated_first(emulator: EmulatorControl) -> None:
    emulator.configure(submit_cut={"every": 1})
    response = emulator.call("POST", "/task/jimeng/text2video", json={"prompt": "x" * 151})

    assert response.status_code == 400
    stats = emulator.stats()
    assert (stats["submits"]["jimeng"], stats["faults"]["submit_cut"]) == (0, 0)


def test_rejected_submits_create_no_job_even_with_submit_cut_on(emulator: EmulatorControl) -> None:
    emulator.configure(submit_cut={"every": 1}, server_error={"next": 3}, rate_limit={"next": 1})
    statuses = [submit_status(emulator) for _ in range(4)]

    assert statuses == [429, 500, 502, 503]
    stats = emulator.stats()
    assert (stats["submits"]["novita"], stats["faults"]["submit_cut"]) == (0, 0)


@pytest.mark.parametrize(("api", "path"), [("novita", NOVITA_TXT2IMG), ("jimeng", "/task/jimeng/text2video")])
def test_a_poll_outage_answers_502_to_every_poll_for_its_window_only(
    emulator: EmulatorControl, api: str, path: str
) -> None:
    task_id = emulator.submit(api, path, sample_body(path)[1])
    started = time.monotonic()  # before the window opens: taken after it, the window's end could come first
    emulator.configure(poll_outage_seconds=1.5)

    during = [emulator.poll(api, task_id) for _ in range(3)]
    emulator.configure(latency=0)  # another setting changed meanwhile does not start the window again
    second_task = emulator.submit(api, path, sample_body(path)[1])  # submits still work
    after = poll_through_outage(emulator, api, task_id)

    assert {response.status_code for response in during} == {502}
    assert "<title>502 Bad Gateway</title>" in during[0].text
    assert after.status_code == 200
    assert time.monotonic() - started >= 1.5
    stats = emulator.stats()
    assert stats["faults"]["poll_outage"] >= 3
    assert stats["submits"][api] == 2 and second_task != task_id
    assert stats["tasks"][task_id]["polls"] == 1  # only the answered poll counts


def test_each_api_keeps_the_poll_outage_last_started_for_it(emulator: EmulatorControl) -> None:
    jimeng, bailian = "/task/jimeng/text2video", "/task/bailian/text2video"
    jimeng_task = emulator.submit("jimeng", jimeng, sample_body(jimeng)[1])
    bailian_task = emulator.submit("bailian", bailian, sample_body(bailian)[1])

    emulator.configure(poll_outage_seconds=30, poll_outage_apis=["jimeng"])
    emulator.configure(poll_outage_seconds=1, poll_outage_apis=["bailian"])

    assert emulator.poll("bailian", bailian_task).status_code == 502
    assert poll_through_outage(emulator, "bailian", bailian_task).status_code == 200
    assert emulator.poll("jimeng", jimeng_task).status_code == 502  # jimeng's own window goes on
    assert emulator.poll("novita", "unknown-task").status_code == 404  # an API the outages do not name


def poll_through_outage(emulator: EmulatorControl, api: str, task_id: str) -> requests.Response:
    """Poll until the answer is no 502 (within 10 s) and return it."""
    deadline = time.monotonic() + 10
    while (answer := emulator.poll(api, task_id)).status_code == 502:
        assert time.monotonic() < deadline, "the poll outage did not end"
    return answer
