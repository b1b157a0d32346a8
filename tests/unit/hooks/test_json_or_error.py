"""What one HTTP exchange means: a 2xx answer's JSON, the typed error of any other answer (never with the key in its
message), and a few words for a request that got no answer at all."""

from __future__ import annotations

import errno
import json
import socket
import ssl

import aiohttp
import pytest

from airflow_provider_genmedia.apis import get_api
from airflow_provider_genmedia.exceptions import (
    GenMediaAPIError,
    GenMediaAuthError,
    GenMediaNotFoundError,
    GenMediaRateLimitError,
    GenMediaServerError,
)
from airflow_provider_genmedia.hooks.json_or_error import (
    answer_text,
    network_failure,
    never_sent,
    read_answer,
    transport_error,
)
from airflow_provider_genmedia.hooks.sessions import CONNECT_TIMEOUT

KEY = "sk-secret-key"
NOVITA = get_api("novita")


def scrub(text: str) -> str:
    return text.replace(KEY, "***")


def refused_port() -> int:
    """A loopback port that nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_2xx_answer_gives_its_json_body() -> None:
    assert read_answer(NOVITA, 200, {}, b'{"task_id": "t1"}', scrub) == {"task_id": "t1"}
    assert read_answer(NOVITA, 201, {}, b"[]", scrub) == []


@pytest.mark.parametrize("content", [b"", b"<html>ok</html>"])
def test_a_2xx_answer_that_is_not_json_is_an_error(content: bytes) -> None:
    with pytest.raises(GenMediaAPIError, match="the answer is not JSON") as raised:
        read_answer(NOVITA, 200, {}, content, scrub)
    assert (raised.value.status_code, raised.value.api) == (200, "novita")


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, GenMediaAPIError),
        (401, GenMediaAuthError),
        (403, GenMediaAuthError),
        (404, GenMediaNotFoundError),
        (429, GenMediaRateLimitError),
        (500, GenMediaServerError),
        (503, GenMediaServerError),
    ],
)
def test_an_error_status_gives_its_typed_error_with_the_vendors_code_and_message(
    status: int, error_class: type[GenMediaAPIError]
) -> None:
    body = {"code": status, "reason": "INVALID_REQUEST", "message": "width must be at most 2048"}
    with pytest.raises(error_class) as raised:
        read_answer(NOVITA, status, {}, json.dumps(body).encode(), scrub)
    error = raised.value
    assert type(error) is error_class
    assert (error.status_code, error.vendor_code, error.message) == (status, "INVALID_REQUEST", body["message"])
    assert error.body == body
    assert error.api == "novita"


def test_retry_after_is_read_from_the_headers() -> None:
    with pytest.raises(GenMediaRateLimitError) as raised:
        read_answer(NOVITA, 429, {"Retry-After": "7"}, b'{"message": "slow down"}', scrub)
    assert raised.value.retry_after == 7.0
    with pytest.raises(GenMediaRateLimitError) as raised:
        read_answer(NOVITA, 429, {}, b'{"message": "slow down"}', scrub)
    assert raised.value.retry_after is None


def test_the_key_never_reaches_the_message() -> None:
    body = {"message": f"invalid key {KEY}"}
    with pytest.raises(GenMediaAuthError) as raised:
        read_answer(NOVITA, 401, {}, json.dumps(body).encode(), scrub)
    assert KEY not in str(raised.value)
    assert raised.value.message == "invalid key ***"


def test_a_gateway_page_is_told_by_its_title_and_a_bare_page_by_its_start() -> None:
    page = b"<html><head><title>502  Bad\n Gateway</title></head><body>nginx</body></html>"
    with pytest.raises(GenMediaServerError) as raised:
        read_answer(NOVITA, 502, {}, page, scrub)
    assert raised.value.message == "502 Bad Gateway"
    with pytest.raises(GenMediaServerError) as raised:
        read_answer(NOVITA, 500, {}, b"upstream   failed " + b"x" * 1000, scrub)
    assert raised.value.message.startswith("upstream failed x")
    assert len(raised.value.message) <= 300
    with pytest.raises(GenMediaServerError) as raised:
        read_answer(NOVITA, 500, {}, b"", scrub)
    assert raised.value.message == "HTTP 500"


def test_answer_text_names_the_status_and_the_vendor_code_where_there_is_one() -> None:
    assert answer_text(GenMediaAuthError("bad key", status_code=401, vendor_code="INVALID_API_KEY")) == (
        "HTTP 401 [INVALID_API_KEY]: bad key"
    )
    assert answer_text(GenMediaAPIError("bad", status_code=400, vendor_code="")) == "HTTP 400: bad"


async def test_a_refused_connection_was_never_sent_and_is_named_so() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError) as raised:
            await session.get(f"http://127.0.0.1:{refused_port()}/v3/async/task-result?key={KEY}")
    refused = raised.value
    assert never_sent(refused)
    assert network_failure(refused, 60) == "connection refused"
    error = transport_error(refused, "GET", f"/v3/async/task-result?key={KEY}", scrub)
    assert not error.connected and error.resendable
    assert str(error).startswith("GET /v3/async/task-result failed (ClientConnectorError: ")
    assert KEY not in str(error)


def test_a_timeout_after_the_connection_may_have_reached_the_vendor() -> None:
    error = transport_error(TimeoutError(), "POST", "/v3/async/img2img", scrub)
    assert error.connected and error.outcome_unknown and not error.resendable
    assert str(error).startswith("POST /v3/async/img2img timed out")
    assert not never_sent(TimeoutError())
    assert never_sent(aiohttp.ConnectionTimeoutError())


def test_network_failure_in_a_few_words() -> None:
    assert network_failure(socket.gaierror(-2, "Name or service not known"), 60) == "host name not found"
    certificate = ssl.SSLError(1, "certificate verify failed")
    certificate.reason = "CERTIFICATE_VERIFY_FAILED"
    wrapped = aiohttp.ClientError("cannot connect")
    wrapped.__cause__ = certificate
    assert network_failure(wrapped, 60) == "TLS failed: CERTIFICATE_VERIFY_FAILED"
    assert network_failure(aiohttp.ConnectionTimeoutError(), 60) == f"no connection within {CONNECT_TIMEOUT:g} s"
    assert network_failure(TimeoutError(), 12.5) == "no answer within 12.5 s"
    reset = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    assert network_failure(reset, 60) == "connection reset by peer"
    assert network_failure(RuntimeError("odd"), 60) == "RuntimeError"
