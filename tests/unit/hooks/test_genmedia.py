"""The hooks over real HTTP, against a small local server (pytest-httpserver) scripted per test."""

from __future__ import annotations

import email.utils
import json
import logging
import re
import socket
import threading
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowNotFoundException
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.exceptions import (
    GenMediaAPIError,
    GenMediaAuthError,
    GenMediaConnectionError,
    GenMediaRateLimitError,
    GenMediaServerError,
    GenMediaUncertainSubmitError,
    GenMediaValidationError,
    ResponseTooLargeError,
)
from airflow_provider_genmedia.hooks.genmedia import GptGeHook, NovitaHook, fetch_policy_for, hook_for
from airflow_provider_genmedia.hooks.json_or_error import MAX_ANSWER_BYTES
from airflow_provider_genmedia.hooks.sessions import open_sessions
from airflow_provider_genmedia.outcomes import airflow_outcome
from airflow_provider_genmedia.results import TaskStatus
from airflow_provider_genmedia.retries import parse_retry_after
from airflow_provider_genmedia.safe_fetch import Origin

KEY = "sk_test_0123456789abcdef"
RESULT_PATH = "/v3/async/task-result"
SUCCEEDED = {
    "extra": {"seed": "42"},
    "task": {"task_id": "t1", "status": "TASK_STATUS_SUCCEED", "reason": ""},
    "images": [{"image_url": "http://x/1.png", "image_url_ttl": "3600", "image_type": "png"}],
}
TXT2VIDEO = {"model_name": "m", "prompts": [{"frames": 16, "prompt": "a dog"}]}


def connect(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn_type: str, host: str, **extra: Any) -> None:
    connection = {"conn_type": conn_type, "host": host, "password": KEY, "extra": {"max_retries": 2, **extra}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))


@pytest.fixture
def novita(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> NovitaHook:
    connect(monkeypatch, "novita_test", "novita", httpserver.url_for("").rstrip("/"))
    return NovitaHook("novita_test")


def requests_to(httpserver: HTTPServer, path: str) -> int:
    return sum(1 for request, _ in httpserver.log if request.path == path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- reading results -------------------------------------------------------------------------------------


def test_result_is_read_with_bearer_auth(httpserver: HTTPServer, novita: NovitaHook) -> None:
    httpserver.expect_request(
        RESULT_PATH, query_string="task_id=t1", headers={"Authorization": f"Bearer {KEY}"}
    ).respond_with_json(SUCCEEDED)
    result = novita.get_result("novita", "t1")
    assert (result.status, result.seed, len(result.outputs)) == (TaskStatus.SUCCEEDED, 42, 1)


def test_429_with_retry_after_is_waited_out_and_retried(httpserver: HTTPServer, novita: NovitaHook) -> None:
    httpserver.expect_ordered_request(RESULT_PATH).respond_with_json(
        {"code": 429, "reason": "RATE_LIMIT_EXCEEDED", "message": "slow down"},
        status=429,
        headers={"retry-after-ms": "200"},
    )
    httpserver.expect_ordered_request(RESULT_PATH).respond_with_json(SUCCEEDED)
    started = time.monotonic()
    assert novita.get_result("novita", "t1").status is TaskStatus.SUCCEEDED
    assert time.monotonic() - started >= 0.19
    assert requests_to(httpserver, RESULT_PATH) == 2


def test_retry_after_as_an_http_date(
    httpserver: HTTPServer, novita: NovitaHook, caplog: pytest.LogCaptureFixture
) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    httpserver.expect_ordered_request(RESULT_PATH).respond_with_data("busy", status=503, headers={"Retry-After": when})
    httpserver.expect_ordered_request(RESULT_PATH).respond_with_json(SUCCEEDED)
    with caplog.at_level(logging.WARNING):
        assert novita.get_result("novita", "t1").status is TaskStatus.SUCCEEDED
    # The wait is the date less now: 1 to 2 s, as the date has whole seconds (computed and logged, not spent here).
    [waited] = [float(m) for m in re.findall(r"retrying in ([0-9.]+) s", caplog.text)]
    assert 0.9 <= waited <= 2.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried(httpserver: HTTPServer, novita: NovitaHook, status: int) -> None:
    httpserver.expect_ordered_request(RESULT_PATH).respond_with_json({"reason": "GET_RESULT_FAILED"}, status=status)
    httpserver.expect_ordered_request(RESULT_PATH).respond_with_json(SUCCEEDED)
    assert novita.get_result("novita", "t1").status is TaskStatus.SUCCEEDED
    assert requests_to(httpserver, RESULT_PATH) == 2


def test_retries_stop_at_max_retries(httpserver: HTTPServer, novita: NovitaHook) -> None:
    httpserver.expect_request(RESULT_PATH).respond_with_json(
        {"reason": "GET_RESULT_FAILED", "message": "boom"}, status=500
    )
    with pytest.raises(GenMediaServerError, match="boom") as raised:
        novita.get_result("novita", "t1")
    assert (raised.value.status_code, raised.value.vendor_code) == (500, "GET_RESULT_FAILED")
    assert requests_to(httpserver, RESULT_PATH) == 3


def test_a_retry_after_beyond_the_cap_is_raised_not_waited(httpserver: HTTPServer, novita: NovitaHook) -> None:
    httpserver.expect_request(RESULT_PATH).respond_with_data("", status=429, headers={"Retry-After": "3600"})
    with pytest.raises(GenMediaRateLimitError) as raised:
        novita.get_result("novita", "t1")
    assert raised.value.retry_after == 3600
    assert requests_to(httpserver, RESULT_PATH) == 1


def test_401_raises_an_auth_error_without_the_key(httpserver: HTTPServer, novita: NovitaHook) -> None:
    echo = {"code": 401, "reason": "INVALID_API_KEY", "message": f"key {KEY} is not valid"}
    httpserver.expect_request(RESULT_PATH).respond_with_json(echo, status=401)
    with pytest.raises(GenMediaAuthError) as raised:
        novita.get_result("novita", "t1")
    assert KEY not in str(raised.value)
    assert KEY not in repr(raised.value.args)
    assert raised.value.vendor_code == "INVALID_API_KEY"
    assert requests_to(httpserver, RESULT_PATH) == 1


def test_non_json_answers_are_errors(httpserver: HTTPServer, novita: NovitaHook) -> None:
    httpserver.expect_request(RESULT_PATH).respond_with_data("<html>gateway</html>", status=200)
    with pytest.raises(GenMediaAPIError, match="not JSON"):
        novita.get_result("novita", "t1")


def test_a_jimeng_risk_verdict_answered_as_400_is_a_failed_task(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, "gptge_test", "gptge", httpserver.url_for("").rstrip("/"))
    verdict = {"code": 50511, "data": None, "message": "Post Img Risk Not Pass", "status": 50511}
    httpserver.expect_request("/task/123").respond_with_json(verdict, status=400)
    result = GptGeHook("gptge_test").get_result("jimeng", "123")
    assert (result.status, result.reason) == (TaskStatus.FAILED, "50511 Post Img Risk Not Pass")


def test_a_jimeng_rate_limit_code_in_a_200_answer_is_retried(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, "gptge_test", "gptge", httpserver.url_for("").rstrip("/"))
    limited = {"code": 50429, "data": None, "message": "Request Has Reached API Limit", "status": 50429}
    running = {"code": 10000, "data": {"status": "generating"}, "message": "Success", "status": 10000}
    httpserver.expect_ordered_request("/task/123").respond_with_json(limited)
    httpserver.expect_ordered_request("/task/123").respond_with_json(running)
    assert GptGeHook("gptge_test").get_result("jimeng", "123").status is TaskStatus.RUNNING
    assert requests_to(httpserver, "/task/123") == 2


def test_connection_errors_are_retried_then_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "novita_down", "novita", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(GenMediaConnectionError, match="GET /v3/async/task-result failed") as raised:
        NovitaHook("novita_down").get_result("novita", "t1")
    assert raised.value.connected is False


# -- submitting: never twice unless surely not received ----------------------------------------------------


def test_submit_answered_500_is_sent_exactly_once(httpserver: HTTPServer, novita: NovitaHook) -> None:
    httpserver.expect_request("/v3/async/txt2video", method="POST").respond_with_json(
        {"reason": "CREATE_TASK_FAILED"}, status=500
    )
    with pytest.raises(GenMediaServerError):
        novita.submit(get_api("novita").prepare(TXT2VIDEO, "/v3/async/txt2video"))
    assert requests_to(httpserver, "/v3/async/txt2video") == 1


def test_submit_that_timed_out_after_sending_is_not_resent(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(10)
        return Response(json.dumps({"task_id": "late"}), content_type="application/json")

    path = "/v3/async/txt2video"
    httpserver.expect_request(path, method="POST").respond_with_handler(slow)
    connect(monkeypatch, "novita_slow", "novita", httpserver.url_for("").rstrip("/"), timeout=0.2)
    with pytest.raises(GenMediaUncertainSubmitError, match=r"may have created a job.*timed out") as raised:
        NovitaHook("novita_slow").submit(get_api("novita").prepare(TXT2VIDEO, path))
    assert (raised.value.api, raised.value.path) == ("novita", path)
    release.set()
    deadline = time.monotonic() + 5
    while requests_to(httpserver, path) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    # submit() has returned: a resend would have been sent before it did, so the count is final.
    assert requests_to(httpserver, path) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_submit_refused_with_429_or_503_is_retried(httpserver: HTTPServer, novita: NovitaHook, status: int) -> None:
    path = "/v3/async/txt2video"
    httpserver.expect_ordered_request(path).respond_with_json(
        {"reason": "busy"}, status=status, headers={"Retry-After": "0"}
    )
    httpserver.expect_ordered_request(path, json=TXT2VIDEO).respond_with_json({"task_id": "t7"})
    assert novita.submit(get_api("novita").prepare(TXT2VIDEO, path)) == "t7"
    assert requests_to(httpserver, path) == 2


def test_submit_to_a_closed_port_is_retried_and_reports_not_connected(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "novita_down", "novita", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(GenMediaConnectionError) as raised:
        NovitaHook("novita_down").submit(get_api("novita").prepare(TXT2VIDEO, "/v3/async/txt2video"))
    assert raised.value.connected is False


def test_bad_input_fails_before_any_request(httpserver: HTTPServer, novita: NovitaHook) -> None:
    body = {"request": {"model_name": "m", "prompt": "p", "width": 9999}}
    with pytest.raises(GenMediaValidationError, match=r"request\.width"):
        novita.submit(get_api("novita").prepare(body, "/v3/async/img2img"))
    with pytest.raises(GenMediaValidationError, match="api"):
        novita.submit(get_api("jimeng").prepare({"prompt": "x"}, "/task/jimeng/text2video"))
    assert len(httpserver.log) == 0


def test_gptge_submit_reads_each_envelope(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "gptge_test", "gptge", httpserver.url_for("").rstrip("/"))
    hook = GptGeHook("gptge_test")
    httpserver.expect_request(
        "/task/jimeng/text2video", json={"prompt": "dog", "seed": -1, "aspect_ratio": "16:9"}
    ).respond_with_json(
        {"code": 10000, "data": {"task_id": "14117763723766220057"}, "message": "Success", "status": 10000}
    )
    httpserver.expect_request("/avatar/generation").respond_with_json({"code": 0, "data": {"id": "av1"}})
    assert (
        hook.submit(get_api("jimeng").prepare({"prompt": "dog"}, "/task/jimeng/text2video")) == "14117763723766220057"
    )
    body = {"avatar_url": "https://example.com/face.png", "audio_url": "https://example.com/a.mp3"}
    assert hook.submit(get_api("avatar").prepare(body, "/avatar/generation")) == "av1"


def test_an_unreadable_submit_answer_is_not_retried(httpserver: HTTPServer, novita: NovitaHook) -> None:
    httpserver.expect_request("/v3/async/txt2video").respond_with_json({"ok": True})
    with pytest.raises(GenMediaUncertainSubmitError, match="could not be read"):
        novita.submit(get_api("novita").prepare(TXT2VIDEO, "/v3/async/txt2video"))
    assert requests_to(httpserver, "/v3/async/txt2video") == 1


@pytest.mark.parametrize("status", [502, 504])
def test_a_gateway_error_page_on_submit_is_uncertain_and_not_resent(
    httpserver: HTTPServer, novita: NovitaHook, status: int
) -> None:
    httpserver.expect_request("/v3/async/txt2video").respond_with_data("<html>Bad Gateway</html>", status=status)
    with pytest.raises(GenMediaUncertainSubmitError, match=f"HTTP {status}"):
        novita.submit(get_api("novita").prepare(TXT2VIDEO, "/v3/async/txt2video"))
    assert requests_to(httpserver, "/v3/async/txt2video") == 1


@pytest.mark.parametrize("status", [500, 502])
def test_the_vendors_own_error_body_on_submit_is_certain(
    httpserver: HTTPServer, novita: NovitaHook, status: int
) -> None:
    httpserver.expect_request("/v3/async/txt2video").respond_with_json(
        {"code": status, "reason": "CREATE_TASK_FAILED", "message": "boom", "metadata": {}}, status=status
    )
    with pytest.raises(GenMediaServerError) as raised:
        novita.submit(get_api("novita").prepare(TXT2VIDEO, "/v3/async/txt2video"))
    assert raised.value.outcome_unknown is False
    assert requests_to(httpserver, "/v3/async/txt2video") == 1


# -- async path ---------------------------------------------------------------------------------------------


async def test_async_path_retries_over_one_shared_session(httpserver: HTTPServer, novita: NovitaHook) -> None:
    httpserver.expect_ordered_request(RESULT_PATH).respond_with_data("", status=429, headers={"retry-after-ms": "100"})
    httpserver.expect_ordered_request(RESULT_PATH).respond_with_data("", status=502)
    httpserver.expect_ordered_request(RESULT_PATH).respond_with_json(SUCCEEDED)
    httpserver.expect_ordered_request(RESULT_PATH).respond_with_json(SUCCEEDED)
    async with novita:
        first = await novita.aget_result("novita", "t1")
        assert open_sessions() == 1
        second = await novita.aget_result("novita", "t1")
        assert open_sessions() == 1
    assert open_sessions() == 0
    assert first.status is second.status is TaskStatus.SUCCEEDED
    assert requests_to(httpserver, RESULT_PATH) == 4


async def test_async_auth_error_hides_the_key(httpserver: HTTPServer, novita: NovitaHook) -> None:
    httpserver.expect_request(RESULT_PATH).respond_with_json({"message": f"bad key {KEY}"}, status=403)
    async with novita:
        with pytest.raises(GenMediaAuthError) as raised:
            await novita.aget_result("novita", "t1")
    assert KEY not in str(raised.value)


# -- connection settings and test_connection ---------------------------------------------------------------


def test_connection_defaults_and_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NOVITA_DEFAULT", json.dumps({"conn_type": "novita", "password": KEY}))
    settings = NovitaHook().settings()
    assert (settings.base_url, settings.timeout, settings.max_retries) == ("https://api.novita.ai", 60.0, 4)
    monkeypatch.setenv(
        "AIRFLOW_CONN_GPTGE_DEFAULT",
        json.dumps(
            {
                "conn_type": "gptge",
                "host": "127.0.0.1",
                "port": 8080,
                "password": KEY,
                "extra": {"extra__gptge__timeout": "5", "max_retries": 0},
            }
        ),
    )
    settings = hook_for(get_api("bailian")).settings()
    assert (settings.base_url, settings.timeout, settings.max_retries) == ("https://127.0.0.1:8080", 5.0, 0)


def test_a_connection_without_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NOVITA_NOKEY", json.dumps({"conn_type": "novita"}))
    with pytest.raises(GenMediaValidationError, match="password"):
        NovitaHook("novita_nokey").settings()


def test_test_connection(httpserver: HTTPServer, novita: NovitaHook, monkeypatch: pytest.MonkeyPatch) -> None:
    httpserver.expect_ordered_request(RESULT_PATH).respond_with_json({"reason": "TASK_NOT_FOUND"}, status=404)
    ok, message = novita.test_connection()
    assert ok and "accepted" in message
    httpserver.expect_ordered_request(RESULT_PATH).respond_with_json({"reason": "INVALID_API_KEY"}, status=401)
    ok, message = NovitaHook("novita_test").test_connection()
    assert not ok and "refused" in message and KEY not in message


def test_test_connection_names_the_service_and_sends_one_request(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpserver.expect_request("/task/airflow-connection-test").respond_with_json(
        {"code": 401, "message": "invalid token"}, status=401
    )
    connect(monkeypatch, "gptge_test", "gptge", httpserver.url_for("").rstrip("/"))
    ok, message = GptGeHook("gptge_test").test_connection()
    assert not ok
    assert message.startswith(f"gpt.ge at {httpserver.url_for('').rstrip('/')} refused the API key: HTTP 401")
    assert "jimeng" not in message.lower() and KEY not in message
    assert requests_to(httpserver, "/task/airflow-connection-test") == 1  # the Test button does not retry


def test_test_connection_reports_a_vendor_outage(httpserver: HTTPServer, novita: NovitaHook) -> None:
    httpserver.expect_request(RESULT_PATH).respond_with_data("<html>bad gateway</html>", status=502)
    ok, message = novita.test_connection()
    assert not ok and message.startswith("Novita AI at http://") and "failed: HTTP 502" in message


def test_test_connection_network_errors_are_short(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    release = threading.Event()
    httpserver.expect_request(RESULT_PATH).respond_with_handler(lambda request: release.wait(10) and Response())
    cases = {
        "refused": (f"http://127.0.0.1:{port}", f"Novita AI: cannot reach http://127.0.0.1:{port}: connection refused"),
        "dns": (
            "http://genmedia-test.invalid",
            "Novita AI: cannot reach http://genmedia-test.invalid: host name not found",
        ),
        # Before "slow", whose request holds the one-threaded server: TLS needs the server's plain-HTTP answer.
        "tls": (httpserver.url_for("").rstrip("/").replace("http://", "https://"), ": TLS failed: "),
        "slow": (httpserver.url_for("").rstrip("/"), "no answer within 0.5 s"),
    }
    try:
        for name, (host, expected) in cases.items():
            connect(monkeypatch, f"novita_{name}", "novita", host, timeout=0.5)
            ok, message = NovitaHook(f"novita_{name}").test_connection()
            assert not ok and expected in message, message
            assert "Max retries" not in message and "HTTPConnectionPool" not in message and len(message) < 160
    finally:
        release.set()


def test_parse_retry_after() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3
    assert parse_retry_after({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    assert parse_retry_after({}) is None
    assert parse_retry_after({"Retry-After": "soon"}) is None
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= (parse_retry_after({"retry-after": in_ten}) or 0) <= 10


async def test_sync_calls_are_refused_inside_an_event_loop(novita: NovitaHook) -> None:
    with pytest.raises(RuntimeError, match="in async code, await the a\\* methods instead"):
        novita.get_result("novita", "t1")


def test_a_gateway_page_is_told_by_its_title(httpserver: HTTPServer, novita: NovitaHook) -> None:
    page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><center>nginx</center></body>\r\n</html>"
    httpserver.expect_request(RESULT_PATH).respond_with_data(page, status=502, content_type="text/html")

    with pytest.raises(GenMediaServerError) as raised:
        novita.run_sync(novita.apoll("novita", "t-page"))

    assert str(raised.value) == "HTTP 502 novita: 502 Bad Gateway"


# -- bounded answers -------------------------------------------------------------------------------------


def test_an_answer_over_the_limit_is_refused_without_retry_announced_or_streamed(
    httpserver: HTTPServer, novita: NovitaHook
) -> None:
    """16 MiB and a byte: refused by its Content-Length, and (sent chunked, with no length) as soon as it passes the
    limit; a refusal is permanent, so the read is not retried."""
    oversized = b'{"pad": "' + b"x" * MAX_ANSWER_BYTES + b'"}'

    def chunked(_: Request) -> Response:
        return Response(
            (oversized[i : i + 65536] for i in range(0, len(oversized), 65536)), mimetype="application/json"
        )

    httpserver.expect_ordered_request(RESULT_PATH).respond_with_data(oversized, content_type="application/json")
    httpserver.expect_ordered_request(RESULT_PATH).respond_with_handler(chunked)
    for _ in range(2):
        with pytest.raises(ResponseTooLargeError, match=r"GET /v3/async/task-result: the answer is over 16777216"):
            novita.client("novita").get_result("t1")
    assert requests_to(httpserver, RESULT_PATH) == 2
    assert type(airflow_outcome(ResponseTooLargeError("x"))).__name__ == "AirflowFailException"


def test_the_fetch_policy_trusts_the_connections_own_origin_key_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_NOVITA_NO_KEY", json.dumps({"conn_type": "novita", "host": "127.0.0.1", "port": 8089})
    )
    assert fetch_policy_for(get_api("novita"), "novita_no_key").own == Origin("https", "127.0.0.1", 8089)
    monkeypatch.delenv("AIRFLOW_CONN_NOVITA_DEFAULT", raising=False)
    assert fetch_policy_for(get_api("novita")).own is None  # no default connection: no origin of its own
    with pytest.raises(AirflowNotFoundException):
        fetch_policy_for(get_api("novita"), "novita_missing")
